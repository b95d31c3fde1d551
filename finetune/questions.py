"""Closed and open instructions for one annotated slice.

Closed: one multiple-choice question per field the consensus holds (a null field asks nothing),
options from the vocabulary shown by display name, diagnosis distractors from the look-alike table,
tumour-free (and untyped) slices asked healthy/abnormal, option order shuffled by a seeded RNG.
Rejection-aware: up to four options plus "None of the above", which is right exactly when the right
option was removed (a trap, at ``trap_rate``). Each question comes in one of two answer styles: the
letter alone, or ``Final: <letter>`` and an explanation citing the findings and measurements.

Open: a report of the slice, the lesion's location, and the reasoning behind its diagnosis, each
with a reference answer and the keywords a scorer checks.

Everything random comes from an RNG seeded by (seed, slice id), so a slice's instructions do not
depend on which other slices are in the set.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from string import ascii_uppercase

from neuroonco.finetune import templates as t
from neuroonco.finetune.annotated import AnnotatedSlice
from neuroonco.finetune.names import NONE_OF_THE_ABOVE, display_name
from neuroonco.finetune.records import IMAGE_TOKEN, Instruction, check_turns, encode_string
from neuroonco.schemas.findings import LESION_FIELDS
from neuroonco.schemas.lookalikes import ABNORMAL, BINARY_DIAGNOSES, HEALTHY, LOOKALIKES
from neuroonco.schemas.vocabulary import FIELDS, normalise

CLOSED_FIELDS: tuple[str, ...] = ("diagnosis", "modality", *LESION_FIELDS)
OPEN_TASKS: tuple[str, ...] = ("report", "location", "reasoning")
MAX_OPTIONS = 4


@dataclass(frozen=True)
class GenerationOptions:
    seed: int = 0
    trap_rate: float = 0.19
    cot_rate: float = 0.5  # share of closed questions answered in the chain-of-thought style

    def __post_init__(self) -> None:
        if not 0 <= self.trap_rate <= 1 or not 0 <= self.cot_rate <= 1:
            raise ValueError("trap_rate and cot_rate must be between 0 and 1")


def slice_rng(seed: int, slice_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{slice_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def instruction_id(run_id: str, slice_id: str, task: str, kind: str) -> str:
    """Stable and readable: one instruction per (run, slice, task, kind)."""
    return f"{run_id}:{slice_id}:{task}:{kind}"


_VALUES = {name: frozenset(m.value for m in FIELDS[name]) for name in CLOSED_FIELDS}


def vocabulary_values(findings: dict) -> dict[str, str]:
    """The consensus fields that hold a vocabulary value (anything else asks nothing)."""
    out = {}
    for name in CLOSED_FIELDS:
        value = findings.get(name)
        if value is None:
            continue
        if value not in _VALUES[name]:  # the consensus is normalised; this is a safety net
            try:
                member = normalise(FIELDS[name], value)
            except ValueError:
                continue
            if member is None:
                continue
            value = member.value
        out[name] = value
    return out


def generate(item: AnnotatedSlice, options: GenerationOptions) -> list[Instruction]:
    """Every instruction of one slice: closed questions first, then open tasks."""
    rng = slice_rng(options.seed, item.slice_id)
    values = vocabulary_values(item.findings)
    out = [closed_question(item, name, values, rng, options) for name in values]
    out += open_instructions(item, values, rng)
    return out


def _base(item: AnnotatedSlice, values: dict, task: str, kind: str, **kw) -> Instruction:
    return Instruction(
        id=instruction_id(item.run_id, item.slice_id, task, kind),
        slice_id=item.slice_id,
        run_id=item.run_id,
        subject_id=item.subject_id,
        diagnosis=values.get("diagnosis"),
        task=task,
        kind=kind,
        image=item.image_path,
        **kw,
    )


@lru_cache(maxsize=256)
def _distractors(name: str, value: str) -> tuple[str, ...]:
    if name == "diagnosis":
        return LOOKALIKES[value]
    return tuple(m.value for m in FIELDS[name] if m.value != value)


def _sample(pool: tuple[str, ...], k: int, rand) -> list[str]:
    """``k`` of ``pool`` in random order (a partial Fisher-Yates shuffle: k draws)."""
    items = list(pool)
    n = len(items)
    for i in range(min(k, n)):
        j = i + int(rand() * (n - i))
        items[i], items[j] = items[j], items[i]
    return items[: min(k, n)]


_DISPLAY: dict[tuple[str, str], str] = {}


def _shown(name: str, value: str) -> str:
    text = _DISPLAY.get((name, value))
    if text is None:
        text = _DISPLAY[(name, value)] = display_name(name, value)
    return text


@dataclass(frozen=True, slots=True)
class _Frame:
    """Everything of a closed question that does not depend on the slice (cached: few exist)."""

    stem: str
    letters: dict[str, str]
    answer: str
    prompt: str
    options_json: str
    user_json: str  # the user turn's content, JSON-encoded, with its <image> token
    original: str | None


@lru_cache(maxsize=1 << 13)  # bounded: memory stays flat however many slices
def _frame(
    name: str, value: str, template: int, cot: bool, shown: tuple[str, ...], trap: bool
) -> _Frame:
    binary = name == "diagnosis" and value in BINARY_DIAGNOSES
    stem = t.CLOSED_STEMS["diagnosis_binary" if binary else name][template]
    if binary:
        texts = list(shown)
        right = HEALTHY if value == "no_tumor" else ABNORMAL
    else:
        texts = [*(_shown(name, v) for v in shown), NONE_OF_THE_ABOVE]
        right = NONE_OF_THE_ABOVE if trap else _shown(name, value)
    letters = dict(zip(ascii_uppercase, texts, strict=False))
    listing = "\n".join(f"{k}. {v}" for k, v in letters.items())
    prompt = f"{stem}\nOptions:\n{listing}\n{t.COT_PROMPT if cot else t.LETTER_PROMPT}"
    check_turns(IMAGE_TOKEN + prompt, "-", 1)  # the user turn of every record using the frame
    return _Frame(
        stem=stem,
        letters=letters,
        answer=ascii_uppercase[texts.index(right)],
        prompt=prompt,
        options_json=json.dumps(letters, ensure_ascii=False),
        user_json=encode_string(IMAGE_TOKEN + prompt),
        original=_shown(name, value) if trap else None,
    )


def closed_question(
    item: AnnotatedSlice, name: str, values: dict, rng: random.Random, options: GenerationOptions
) -> Instruction:
    value = values[name]
    rand = rng.random
    binary = name == "diagnosis" and value in BINARY_DIAGNOSES
    template = int(rand() * 3)  # every task has three stems (a test holds this)
    cot = rand() < options.cot_rate
    trap_draw = rand()
    if binary:
        shown = (HEALTHY, ABNORMAL) if rand() < 0.5 else (ABNORMAL, HEALTHY)
        trap = False
    else:
        trap = trap_draw < options.trap_rate
        picked = _sample(_distractors(name, value), MAX_OPTIONS - (0 if trap else 1), rand)
        if not trap:
            picked.insert(int(rand() * (len(picked) + 1)), value)
        shown = tuple(picked)
    frame = _frame(name, value, template, cot, shown, trap)
    answer = frame.answer
    response = f"Final: {answer}\n{_explain(item, name, value, binary, trap)}" if cot else answer
    return Instruction(
        f"{item.run_id}:{item.slice_id}:{name}:closed",
        item.slice_id,
        item.run_id,
        item.subject_id,
        values.get("diagnosis"),
        name,
        "closed",
        "cot" if cot else "letter",
        template,
        frame.stem,
        frame.prompt,
        answer,
        response,
        item.image_path,
        frame.letters,
        trap,
        frame.original,
        options_json=frame.options_json,
        user_json=frame.user_json,
    )


def _explain(item: AnnotatedSlice, name: str, value: str, binary: bool, trap: bool) -> str:
    f, m = item.findings, item.measurements
    if binary:
        if value == "no_tumor":
            return "No lesion is seen on this slice, so it is healthy."
        seen = _sentence(f) if _has_lesion(f) else "a lesion"
        return f"The slice shows {seen}, so it is abnormal."
    if name == "diagnosis":
        reason = f"The slice shows {_sentence(f)}." if _has_lesion(f) else ""
        because = f"{reason} The appearance fits {t.diagnosis_words(value)}".strip()
    else:
        because = t.evidence(name, value, f, m).rstrip(".")
    if trap:
        return (
            f"{because}. {display_name(name, value)} is not among the options, "
            "so none of the above is right."
        )
    return f"{because}. The answer is {display_name(name, value)}."


@lru_cache(maxsize=1 << 14)
def _sentence_for(key: tuple) -> str:
    return t.finding_sentence(dict(zip(LESION_FIELDS, key, strict=True)))


@lru_cache(maxsize=1 << 14)
def _keywords_for(key: tuple) -> tuple[str, ...]:
    return tuple(t.keyword(k, v) for k, v in zip(LESION_FIELDS, key, strict=True) if v)


def _sentence(values: dict) -> str:
    """The lesion findings in words (cached: many slices share one combination)."""
    return _sentence_for(tuple(values.get(k) for k in LESION_FIELDS))


def _lesion_keywords(values: dict) -> list[str]:
    return list(_keywords_for(tuple(values.get(k) for k in LESION_FIELDS)))


def _has_lesion(findings: dict) -> bool:
    return any(findings.get(k) for k in LESION_FIELDS)


def _measured(m: dict) -> str:
    parts = []
    if isinstance(m.get("area_fraction"), int | float) and m.get("area_fraction"):
        parts.append(f"covers {m['area_fraction']:.1%} of the image area")
    if isinstance(m.get("circularity"), int | float) and m.get("circularity"):
        parts.append(f"has circularity {m['circularity']:.2f}")
    return f" It {' and '.join(parts)}." if parts else ""


def report_answer(item: AnnotatedSlice, values: dict) -> tuple[str, list[str]]:
    modality = values.get("modality")
    on = f" on this {display_name('modality', modality)} slice" if modality else ""
    dx = values.get("diagnosis")
    if dx == "no_tumor" or item.findings.get("lesion_found") is False:
        return f"No focal lesion is seen{on}; the brain appears healthy.", ["no focal lesion"]
    if not _has_lesion(values):
        return f"An abnormality is present{on}; its features are not assessed.", ["abnormality"]
    text = f"There is {_sentence(values)}{on}.{_measured(item.measurements)}"
    keywords = _lesion_keywords(values)
    if dx and dx not in BINARY_DIAGNOSES:
        text += f" The appearance is most consistent with {t.diagnosis_words(dx)}."
        keywords.append(t.diagnosis_words(dx))
    return text, keywords


def location_answer(item: AnnotatedSlice, values: dict) -> tuple[str, list[str]]:
    loc, side = values.get("location"), values.get("laterality")
    parts, keywords = [], []
    if loc:
        where = f"in the {t.keyword('location', loc)} of the image"
        centroid = item.measurements.get("centroid")
        if isinstance(centroid, list | tuple) and len(centroid) >= 2:
            where += f" (centroid at x={centroid[0]:.2f}, y={centroid[1]:.2f})"
        parts.append(where)
        keywords.append(t.keyword("location", loc))
    if side:
        parts.append(t.side_phrase(side))
        keywords.append(t.keyword("laterality", side))
    return f"The lesion lies {', '.join(parts)}.", keywords


def reasoning_answer(item: AnnotatedSlice, values: dict) -> tuple[str, list[str]]:
    dx = values["diagnosis"]
    others = [t.diagnosis_words(v) for v in LOOKALIKES[dx][:2]]
    cue = t.DIAGNOSIS_CUES[dx]
    text = (
        f"The slice shows {_sentence(values)}.{_measured(item.measurements)} "
        f"{cue[0].upper()}{cue[1:]}. Together these findings favour {t.diagnosis_words(dx)} "
        f"over {others[0]} or {others[1]}."
    )
    return text, _lesion_keywords(values)


def open_instructions(item: AnnotatedSlice, values: dict, rng: random.Random) -> list[Instruction]:
    tasks = [("report", report_answer)]
    if values.get("location") or values.get("laterality"):
        tasks.append(("location", location_answer))
    dx = values.get("diagnosis")
    if dx and dx not in BINARY_DIAGNOSES and _has_lesion(values):
        tasks.append(("reasoning", reasoning_answer))
    out = []
    for task, build in tasks:
        stems = t.OPEN_STEMS[task]
        template = int(rng.random() * len(stems))
        stem = stems[template].format(diagnosis=t.diagnosis_words(dx) if dx else "")
        text, keywords = build(item, values)
        out.append(
            _base(
                item,
                values,
                task,
                "open",
                style="open",
                template=template,
                question=stem,
                prompt=stem,
                answer=text,
                response=text,
                keywords=keywords,
            )
        )
    return out
