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
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from string import ascii_uppercase

from neuroonco.finetune import templates as t
from neuroonco.finetune.annotated import AnnotatedSlice
from neuroonco.finetune.names import NONE_OF_THE_ABOVE, display_name
from neuroonco.finetune.records import (
    IMAGE_TOKEN,
    Instruction,
    check_turns,
    encode_string,
    keywords_json,
)
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


def generate(
    item: AnnotatedSlice,
    options: GenerationOptions,
    *,
    split: str = "train",
    values: dict[str, str] | None = None,
) -> list[Instruction]:
    """Every instruction of one slice: closed questions first, then open tasks.

    ``values`` (:func:`vocabulary_values` of the findings) may be passed when the caller has it.
    """
    rng = slice_rng(options.seed, item.slice_id)
    if values is None:
        values = vocabulary_values(item.findings)
    out: list[Instruction] = []
    _closed_questions(item, values, rng.random, options, split, out)
    out += open_instructions(item, values, rng, split)
    return out


def _distractors(name: str, value: str) -> tuple[str, ...]:
    if name == "diagnosis":
        return LOOKALIKES[value]
    return tuple(m.value for m in FIELDS[name] if m.value != value)


class _Shown(dict):
    """value -> display text of one field's options, filled as values come up (few exist)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __missing__(self, value: str) -> str:
        text = self[value] = display_name(self.name, value)
        return text


_TEXT = {name: _Shown(name) for name in CLOSED_FIELDS}


def _inner(text: str) -> str:
    """``text`` JSON-encoded without its quotes: JSON escapes character by character, so the
    encoding of a concatenation is the concatenation of these."""
    return encode_string(text)[1:-1]


@dataclass(frozen=True, slots=True)
class _Layout:
    """One way a closed question's options can be shown, with everything derived from it."""

    texts: tuple[str, ...]
    letters: dict[str, str]
    answer: str  # the right letter
    listing: str  # "A. ...\nB. ...", as the prompt lists them
    listing_json: str  # the listing JSON-encoded, without its quotes
    options_json: str
    closing: str  # how the explanation ends: the answer named, or why none of them is right


class _Layouts:
    """Every way the options of one (field, right value, trap) can be shown, numbered.

    Layout ``i`` of ``count``: ``k`` of the ``n`` distractors in one of their ``n!/(n-k)!``
    orders, then, unless this is a trap, the right value at one of ``k + 1`` places. One draw
    picks the number, so every layout is equally likely, as with a shuffle, for one draw instead
    of ``k + 1``; each layout is built the first time it is drawn (a few thousand come up).
    """

    __slots__ = ("count", "distractors", "k", "made", "name", "trap", "value")

    def __init__(self, name: str, value: str, trap: bool) -> None:
        self.name, self.value, self.trap = name, value, trap
        self.distractors = _distractors(name, value)
        n = len(self.distractors)
        self.k = k = min(MAX_OPTIONS if trap else MAX_OPTIONS - 1, n)
        orders = 1
        for i in range(k):
            orders *= n - i
        self.count = orders if trap else orders * (k + 1)
        self.made: dict[int, _Layout] = {}

    def get(self, index: int) -> _Layout:
        found = self.made.get(index)
        if found is None:
            found = self.made[index] = self._make(index)
        return found

    def _make(self, index: int) -> _Layout:
        picked, n, k = list(self.distractors), len(self.distractors), self.k
        if not self.trap:
            index, place = divmod(index, k + 1)
        for i in range(k):  # the index as mixed-radix digits: a Fisher-Yates shuffle's choices
            index, j = divmod(index, n - i)
            picked[i], picked[i + j] = picked[i + j], picked[i]
        del picked[k:]
        if not self.trap:
            picked.insert(place, self.value)
        table = _TEXT[self.name]
        texts = (*(table[v] for v in picked), NONE_OF_THE_ABOVE)
        right = NONE_OF_THE_ABOVE if self.trap else table[self.value]
        return _layout(self.name, texts, right, _closing(self.name, self.value, self.trap))


def _layout(name: str, texts: tuple[str, ...], right: str, closing: str) -> _Layout:
    letters = dict(zip(ascii_uppercase, texts, strict=False))
    listing = "\n".join(f"{k}. {v}" for k, v in letters.items())
    if IMAGE_TOKEN in listing:  # the user turn's one token is the image's
        raise ValueError(f"an option of {name} holds {IMAGE_TOKEN}: {listing!r}")
    return _Layout(
        texts,
        letters,
        ascii_uppercase[texts.index(right)],
        listing,
        _inner(listing),
        json.dumps(letters, ensure_ascii=False),
        closing,
    )


class _LayoutTable(dict):
    """(field, right value, trap) -> its :class:`_Layouts` (bounded by the vocabulary)."""

    def __missing__(self, key: tuple[str, str, bool]) -> _Layouts:
        found = self[key] = _Layouts(*key)
        return found


_LAYOUTS = _LayoutTable()
# Healthy/abnormal, in either order, for each binary diagnosis.
_BINARY = {
    (value, first): _layout(
        "diagnosis",
        order,
        HEALTHY if value == "no_tumor" else ABNORMAL,
        "",
    )
    for value in BINARY_DIAGNOSES
    for first, order in ((True, (HEALTHY, ABNORMAL)), (False, (ABNORMAL, HEALTHY)))
}


# A closed question's user turn, "<image>" + stem + "\nOptions:\n" + listing + "\n" + how to
# answer, is JSON-encoded from these pieces, each encoded once.
_STEM_JSON = {
    (task, i): '"' + _inner(f"{IMAGE_TOKEN}{stem}\nOptions:\n")
    for task, stems in t.CLOSED_STEMS.items()
    for i, stem in enumerate(stems)
}
_ASK_JSON = {True: _inner("\n" + t.COT_PROMPT) + '"', False: _inner("\n" + t.LETTER_PROMPT) + '"'}


def _check_closed_texts() -> None:
    """The stems and answer instructions hold no image token, so a closed question's user turn,
    ``<image>`` + stem, options and instruction joined by newlines, holds exactly one (no token
    can span a newline); the options are checked as they are made."""
    texts = [*(s for stems in t.CLOSED_STEMS.values() for s in stems)]
    for text in (*texts, t.COT_PROMPT, t.LETTER_PROMPT):
        if IMAGE_TOKEN in text:
            raise ValueError(f"a closed-question template holds the image token: {text!r}")


_check_closed_texts()


def _closed_questions(
    item: AnnotatedSlice,
    values: dict[str, str],
    rand: Callable[[], float],
    options: GenerationOptions,
    split: str,
    out: list[Instruction],
) -> None:
    """One multiple-choice question per field in ``values``, appended to ``out``.

    The hot loop of the instruction set (about nine per slice), so the slice's constants are
    bound once and the draws are inlined; the order of the draws is the contract that keeps a
    seed's questions the same: template, style, trap, then the layout of the options.
    """
    slice_id, run_id, subject, image = item.slice_id, item.run_id, item.subject_id, item.image_path
    prefix = f"{run_id}:{slice_id}:"
    diagnosis = values.get("diagnosis")
    cot_rate, trap_rate = options.cot_rate, options.trap_rate
    stems, stem_json, ask_json = t.CLOSED_STEMS, _STEM_JSON, _ASK_JSON
    layouts, measured, text_of, new = _LAYOUTS, _MEASURED, _TEXT, tuple.__new__
    lesion_key: tuple | None = None  # the findings' lesion fields, for the explanations
    for name, value in values.items():
        binary = name == "diagnosis" and value in BINARY_DIAGNOSES
        template = int(rand() * 3)  # every task has three stems (a test holds this)
        cot = rand() < cot_rate
        trap = rand() < trap_rate and not binary
        if binary:
            shown = _BINARY[value, rand() < 0.5]
            task = "diagnosis_binary"
        else:
            table = layouts[name, value, trap]
            shown = table.get(int(rand() * table.count))
            task = name
        answer = shown.answer
        user_json = f"{stem_json[task, template]}{shown.listing_json}{ask_json[cot]}"
        if cot:
            if name in measured:
                because = t.evidence(name, value, item.findings, item.measurements)
                text = because.rstrip(".") + shown.closing
            elif name != "diagnosis":
                text = _explain_fixed(name, value, trap)
            else:
                if lesion_key is None:
                    lesion_key = tuple(map(item.findings.get, LESION_FIELDS))
                text = _explain_diagnosis(value, binary, trap, lesion_key)
            response = f"Final: {answer}\n{text}"
        else:
            response = answer
        # The fields in Instruction's order (records._FIELDS): its row, then the rest.
        out.append(
            new(
                Instruction,
                (
                    prefix + name + ":closed",
                    slice_id,
                    run_id,
                    name,
                    "closed",
                    stems[task][template],
                    shown.options_json,
                    answer,
                    split,
                    "cot" if cot else "letter",
                    response,
                    1 if trap else 0,
                    text_of[name][value] if trap else "",
                    "",
                    template,
                    0,
                    subject,
                    diagnosis,
                    image,
                    shown.letters,
                    (),
                    user_json,
                ),
            )
        )


# Explanations of these fields cite the slice's measurements; every other field's explanation
# depends only on the value and the lesion findings, so it is made once per combination.
_MEASURED = t.EVIDENCE_FROM_MEASUREMENTS


@lru_cache(maxsize=1024)
def _closing(name: str, value: str, trap: bool) -> str:
    if trap:
        return (
            f". {display_name(name, value)} is not among the options, "
            "so none of the above is right."
        )
    return f". The answer is {display_name(name, value)}."


@lru_cache(maxsize=1024)
def _explain_fixed(name: str, value: str, trap: bool) -> str:
    """The explanation of a field whose evidence is not measured (nor the diagnosis)."""
    return t.evidence(name, value, {}, {}).rstrip(".") + _closing(name, value, trap)


def _explain_diagnosis(value: str, binary: bool, trap: bool, lesion_key: tuple) -> str:
    """The diagnosis's explanation, citing the lesion findings (``lesion_key``: the findings'
    values of LESION_FIELDS, in order)."""
    if binary:
        if value == "no_tumor":
            return "No lesion is seen on this slice, so it is healthy."
        seen = _sentence_for(lesion_key) if any(lesion_key) else "a lesion"
        return f"The slice shows {seen}, so it is abnormal."
    reason = f"The slice shows {_sentence_for(lesion_key)}." if any(lesion_key) else ""
    because = f"{reason} The appearance fits {t.diagnosis_words(value)}".strip()
    return because + _closing("diagnosis", value, trap)


_sentence_for = t.lesion_sentence
_keywords_for = t.lesion_keywords


def _lesion_key(values: dict) -> tuple:
    """The values of LESION_FIELDS, in order: what the lesion's sentence and keywords depend on
    (the caches' key: many slices share one combination)."""
    return tuple(map(values.get, LESION_FIELDS))


def _measured(m: dict) -> str:
    parts = []
    if isinstance(m.get("area_fraction"), int | float) and m.get("area_fraction"):
        parts.append(f"covers {m['area_fraction']:.1%} of the image area")
    if isinstance(m.get("circularity"), int | float) and m.get("circularity"):
        parts.append(f"has circularity {m['circularity']:.2f}")
    return f" It {' and '.join(parts)}." if parts else ""


@lru_cache(maxsize=64)
def _on_modality(modality: str) -> str:
    return f" on this {display_name('modality', modality)} slice"


def report_answer(
    item: AnnotatedSlice, values: dict, key: tuple | None = None
) -> tuple[str, list[str]]:
    """The report and its keywords (``key``: :func:`_lesion_key` of ``values``, if known)."""
    key = _lesion_key(values) if key is None else key
    modality = values.get("modality")
    on = _on_modality(modality) if modality else ""
    dx = values.get("diagnosis")
    if dx == "no_tumor" or item.findings.get("lesion_found") is False:
        return f"No focal lesion is seen{on}; the brain appears healthy.", ["no focal lesion"]
    if not any(key):
        return f"An abnormality is present{on}; its features are not assessed.", ["abnormality"]
    text = f"There is {_sentence_for(key)}{on}.{_measured(item.measurements)}"
    keywords = list(_keywords_for(key))
    if dx and dx not in BINARY_DIAGNOSES:
        text += f" The appearance is most consistent with {t.diagnosis_words(dx)}."
        keywords.append(t.diagnosis_words(dx))
    return text, keywords


def location_answer(
    item: AnnotatedSlice, values: dict, key: tuple | None = None
) -> tuple[str, list[str]]:
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


def reasoning_answer(
    item: AnnotatedSlice, values: dict, key: tuple | None = None
) -> tuple[str, list[str]]:
    key = _lesion_key(values) if key is None else key
    text = f"The slice shows {_sentence_for(key)}.{_measured(item.measurements)}"
    return text + _reasoning_tail(values["diagnosis"]), list(_keywords_for(key))


@lru_cache(maxsize=64)
def _reasoning_tail(dx: str) -> str:
    """What a reasoning answer says after the findings: the diagnosis's typical features and the
    look-alikes it is preferred over (a function of the diagnosis alone)."""
    others = [t.diagnosis_words(v) for v in LOOKALIKES[dx][:2]]
    cue = t.DIAGNOSIS_CUES[dx]
    return (
        f" {cue[0].upper()}{cue[1:]}. Together these findings favour {t.diagnosis_words(dx)} "
        f"over {others[0]} or {others[1]}."
    )


@lru_cache(maxsize=256)
def _open_stem(task: str, template: int, diagnosis: str | None) -> tuple[str, str]:
    """An open task's stem and its user turn, JSON-encoded with the <image> token (checked)."""
    stem = t.OPEN_STEMS[task][template].format(
        diagnosis=t.diagnosis_words(diagnosis) if diagnosis else ""
    )
    check_turns(IMAGE_TOKEN + stem, "-", 1)
    return stem, encode_string(IMAGE_TOKEN + stem)


def open_instructions(
    item: AnnotatedSlice, values: dict, rng: random.Random, split: str = "train"
) -> list[Instruction]:
    key = _lesion_key(values)
    tasks = [("report", report_answer)]
    if values.get("location") or values.get("laterality"):
        tasks.append(("location", location_answer))
    dx = values.get("diagnosis")
    if dx and dx not in BINARY_DIAGNOSES and any(key):
        tasks.append(("reasoning", reasoning_answer))
    out = []
    for task, build in tasks:
        template = int(rng.random() * len(t.OPEN_STEMS[task]))
        stem, user_json = _open_stem(task, template, dx)
        text, keywords = build(item, values, key)
        out.append(
            Instruction(
                (
                    f"{item.run_id}:{item.slice_id}:{task}:open",
                    item.slice_id,
                    item.run_id,
                    task,
                    "open",
                    stem,
                    "",
                    text,
                    split,
                    "open",
                    text,
                    0,
                    "",
                    keywords_json(keywords) if keywords else "",
                    template,
                    0,
                    item.subject_id,
                    dx,
                    item.image_path,
                    None,
                    keywords,
                    user_json,
                )
            )
        )
    return out
