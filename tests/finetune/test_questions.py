"""Closed and open instructions: answers among the options, honest traps, no leakage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlite_utils

from neuroonco.finetune import annotated
from neuroonco.finetune.names import NONE_OF_THE_ABOVE, concept_of, display_name
from neuroonco.finetune.questions import GenerationOptions, generate, vocabulary_values
from neuroonco.finetune.templates import CLOSED_STEMS, OPEN_STEMS
from neuroonco.schemas.lookalikes import ABNORMAL, HEALTHY, LOOKALIKES
from neuroonco.tools.synthetic_annotations import write_synthetic_store


def slices_of(db: Path, statuses=("accepted", "needs_review")) -> list[annotated.AnnotatedSlice]:
    conn = sqlite_utils.Database(db)
    choice = annotated.choose_run(conn, None, str(db))
    return list(annotated.iter_slices(conn, choice, statuses))


@pytest.fixture(scope="module")
def synthetic_slices(tmp_path_factory) -> list[annotated.AnnotatedSlice]:
    db = tmp_path_factory.mktemp("syn") / "s.db"
    write_synthetic_store(db, 3000, seed=5)
    return slices_of(db)


@pytest.fixture(scope="module")
def real_slices(annotated_store: Path) -> list[annotated.AnnotatedSlice]:
    return slices_of(annotated_store)


def all_instructions(slices, **kw):
    options = GenerationOptions(**kw)
    return [(s, i) for s in slices for i in generate(s, options)]


def test_one_closed_question_per_field_the_consensus_holds(real_slices, synthetic_slices):
    for item in [*real_slices, *synthetic_slices]:
        closed = [i.task for i in generate(item, GenerationOptions()) if i.kind == "closed"]
        held = [
            k
            for k, v in item.findings.items()
            if v is not None and k in vocabulary_values(item.findings)
        ]
        assert sorted(closed) == sorted(held)
        assert all(item.findings.get(task) is not None for task in closed)


def test_answers_are_among_options_and_traps_are_honest(real_slices, synthetic_slices):
    n_trap = n_closed = 0
    for item, ins in all_instructions([*real_slices, *synthetic_slices]):
        if ins.kind != "closed":
            continue
        n_closed += 1
        options = ins.options
        assert ins.answer in options
        concepts = [concept_of(ins.task, text) for text in options.values()]
        assert len(set(concepts)) == len(concepts), options  # never two spellings of one thing
        value = vocabulary_values(item.findings)[ins.task]
        if ins.task == "diagnosis" and value in ("no_tumor", "tumor"):
            assert set(options.values()) == {HEALTHY, ABNORMAL} and not ins.trap
            assert options[ins.answer] == (HEALTHY if value == "no_tumor" else ABNORMAL)
            continue
        assert list(options.values())[-1] == NONE_OF_THE_ABOVE and len(options) <= 5
        if ins.trap:
            n_trap += 1
            assert options[ins.answer] == NONE_OF_THE_ABOVE
            assert ins.original_answer == display_name(ins.task, value)
            assert value not in concepts  # the right option really is gone
        else:
            # "None of the above" is right on traps only.
            assert options[ins.answer] == display_name(ins.task, value)
            assert ins.original_answer is None
        for text in list(options.values())[:-1]:  # every option is a display name
            concept = concept_of(ins.task, text)
            assert not concept.startswith("text:"), text
            if ins.task == "diagnosis" and concept.startswith("oov:"):
                assert concept[4:] in LOOKALIKES[value]
            elif ins.task == "diagnosis":
                assert concept == value or concept in LOOKALIKES[value]
    assert n_closed > 1000
    assert 0.16 < n_trap / n_closed < 0.22


def test_trap_rate_is_configurable(synthetic_slices):
    none = all_instructions(synthetic_slices[:300], trap_rate=0.0)
    assert not any(
        i.trap or i.options[i.answer] == NONE_OF_THE_ABOVE for _, i in none if i.kind == "closed"
    )
    every = [
        i
        for _, i in all_instructions(synthetic_slices[:300], trap_rate=1.0)
        if i.kind == "closed" and i.options and NONE_OF_THE_ABOVE in i.options.values()
    ]
    assert every and all(i.trap for i in every)


def test_generation_is_seeded_and_shuffles(real_slices):
    first = [i.prompt for _, i in all_instructions(real_slices, seed=1)]
    again = [i.prompt for _, i in all_instructions(real_slices, seed=1)]
    other = [i.prompt for _, i in all_instructions(real_slices, seed=2)]
    assert first == again and first != other
    positions = {
        i.answer for _, i in all_instructions(real_slices) if i.kind == "closed" and not i.trap
    }
    assert len(positions) >= 3  # the right option is not always in one place


def test_two_answer_styles_and_cot_cites_measurements(synthetic_slices):
    styles = {"letter": 0, "cot": 0}
    for item, ins in all_instructions(synthetic_slices[:500]):
        if ins.kind != "closed":
            continue
        styles[ins.style] += 1
        if ins.style == "letter":
            assert ins.response == ins.answer and "letter only" in ins.prompt
        else:
            head, explanation = ins.response.split("\n", 1)
            assert head == f"Final: {ins.answer}" and len(explanation) > 20
            if ins.task == "size":
                assert f"{item.measurements['area_fraction']:.1%}" in explanation
            if ins.task == "shape":
                assert f"{item.measurements['circularity']:.2f}" in explanation
            if ins.trap:
                assert ins.original_answer in explanation and "not among the options" in explanation
    assert styles["letter"] > 100 and styles["cot"] > 100


def test_open_tasks_have_references_and_keywords(real_slices):
    tasks = set()
    for item, ins in all_instructions(real_slices):
        if ins.kind != "open":
            continue
        tasks.add(ins.task)
        assert ins.answer == ins.response and ins.keywords
        for word in ins.keywords:
            assert word.lower() in ins.answer.lower(), (word, ins.answer)
        if (
            ins.task == "report"
            and "area_fraction" in item.measurements
            and item.measurements["area_fraction"]
        ):
            assert f"{item.measurements['area_fraction']:.1%}" in ins.answer
    assert tasks == {"report", "location", "reasoning"}
    assert all(len(stems) >= 3 for stems in [*CLOSED_STEMS.values(), *OPEN_STEMS.values()])


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9%.]+", " ", text.lower()) + " "


def test_no_stem_leaks_an_answer_or_keyword(real_slices, synthetic_slices):
    checked = 0
    for item in [*real_slices, *synthetic_slices]:
        made = generate(item, GenerationOptions())
        values = vocabulary_values(item.findings)
        giveaways = set()
        for ins in made:
            giveaways.update(ins.keywords)
            if ins.kind == "closed":
                giveaways.add(ins.options[ins.answer])
                if ins.original_answer:
                    giveaways.add(ins.original_answer)
        giveaways.discard(NONE_OF_THE_ABOVE)
        giveaways.update(display_name(k, v) for k, v in values.items() if k != "diagnosis")
        for ins in made:
            stem = _words(ins.question)
            premise = (
                _words(display_name("diagnosis", values["diagnosis"])).strip()
                if (ins.task == "reasoning")
                else None
            )
            for word in giveaways:
                w = _words(word).strip()
                if premise and w == premise:
                    continue  # "why is this a meningioma?" states the premise, not the answer
                assert f" {w} " not in stem, (ins.task, ins.question, word)
                checked += 1
    assert checked > 10_000


def test_fixed_evidence_depends_on_the_value_alone(synthetic_slices):
    """Generation caches the explanation of the fields outside EVIDENCE_FROM_MEASUREMENTS by
    value: their evidence must not read the findings or the measurements."""
    from neuroonco.finetune import templates
    from neuroonco.schemas.vocabulary import FIELDS

    rich = [item for item in synthetic_slices if item.measurements.get("lesion")][:20]
    assert rich
    for name in FIELDS:
        if name in templates.EVIDENCE_FROM_MEASUREMENTS or name == "diagnosis":
            continue
        for member in FIELDS[name]:
            bare = templates.evidence(name, member.value, {}, {})
            for item in rich:
                said = templates.evidence(name, member.value, item.findings, item.measurements)
                assert said == bare, (name, member.value)


def test_options_json_and_user_turn_are_what_json_dumps_writes(synthetic_slices):
    import json

    from neuroonco.finetune.records import IMAGE_TOKEN, encode_string

    for item in synthetic_slices[:300]:
        for ins in generate(item, GenerationOptions(seed=2, trap_rate=0.4)):
            if ins.kind == "closed":
                assert ins.options_json == json.dumps(ins.options, ensure_ascii=False)
            assert ins.user_json == encode_string(IMAGE_TOKEN + ins.prompt)


@pytest.mark.parametrize("trap", [False, True])
@pytest.mark.parametrize(("name", "value"), [("location", "center"), ("diagnosis", "glioma")])
def test_each_option_layout_is_a_distinct_honest_draw(name, value, trap):
    """One draw numbers every layout: each number gives a different list of options, the right
    one exactly once (never on a trap), so the layouts are as equally likely as the draws."""
    from neuroonco.finetune.questions import _Layouts

    layouts = _Layouts(name, value, trap)
    right = display_name(name, value)
    shown = [layouts.get(i) for i in range(layouts.count)]
    assert len({layout.texts for layout in shown}) == layouts.count
    n = len(layouts.distractors)
    k = min(4 if trap else 3, n)
    orders = 1
    for i in range(k):
        orders *= n - i
    assert layouts.count == (orders if trap else orders * (k + 1))
    for layout in shown:
        assert layout.texts[-1] == NONE_OF_THE_ABOVE and len(layout.texts) == k + (not trap) + 1
        assert layout.texts.count(right) == (0 if trap else 1)
        assert layout.letters[layout.answer] == (NONE_OF_THE_ABOVE if trap else right)
    if not trap:  # the right option sits at each place equally often
        places = [layout.texts.index(right) for layout in shown]
        assert {places.count(p) for p in set(places)} == {layouts.count // (k + 1)}
