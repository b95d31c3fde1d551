"""Benchmark files in the MM-NeuroOnco-Bench v1.0 format (ours and the official ones, as they are).

A closed file is a JSON list of records `{"id", "image_path", "vqa_pairs": [...]}`; each pair has
`question_type`, `question`, `options` ({letter: text}), `answer` (a letter) and, on traps,
`meta_trap: true` and `meta_original_answer` (the removed right answer). The k-th pair (1-based) of
record N is question `N_qk`. An open file is a list of `{"id", "image_path", "qa_pairs": [...]}`
whose pairs carry their own `question_id`, `question_type`, `question`, `reference_answer` and
`eval_keywords`.

Traps are read from `meta_trap`: the official evaluation scripts read `meta_is_unanswerable`, a
field their data does not have, so they never scored a trap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError

REFUSAL_TEXTS = frozenset({"none of the above", "none of these", "none of the options"})


def is_refusal_text(text: str) -> bool:
    """Whether an option's text is the benchmark's refusal option ("None of the above")."""
    return " ".join(text.lower().replace(".", " ").split()) in REFUSAL_TEXTS


@dataclass(frozen=True)
class ClosedQuestion:
    """One multiple-choice question; `options` keeps the file's letter order."""

    question_id: str
    record_id: str
    image_path: str
    question_type: str
    question: str
    options: dict[str, str]
    answer: str
    trap: bool = False
    original_answer: str | None = None
    rotation: int = 0  # CircularEval: how far the non-refusal options were rotated

    @property
    def kind(self) -> str:
        return "closed"

    @property
    def refusal_letter(self) -> str | None:
        """The letter of the "None of the above" option, if the question offers one."""
        for letter, text in self.options.items():
            if is_refusal_text(text):
                return letter
        return None

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]

    @property
    def true_value(self) -> str:
        """The right concept: the removed original answer on a trap, else the answer's text."""
        if self.trap and self.original_answer:
            return self.original_answer
        return self.answer_text


@dataclass(frozen=True)
class OpenQuestion:
    """One open-ended question with its reference answer and keywords."""

    question_id: str
    record_id: str
    image_path: str
    question_type: str
    question: str
    reference_answer: str
    eval_keywords: tuple[str, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> str:
        return "open"


Question = ClosedQuestion | OpenQuestion


@dataclass
class Bench:
    """A loaded benchmark file: its questions in file order."""

    path: Path
    kind: str  # "closed" | "open"
    questions: list[Question]

    @property
    def closed(self) -> list[ClosedQuestion]:
        return [q for q in self.questions if isinstance(q, ClosedQuestion)]

    @property
    def open(self) -> list[OpenQuestion]:
        return [q for q in self.questions if isinstance(q, OpenQuestion)]

    def by_id(self) -> dict[str, Question]:
        return {q.question_id: q for q in self.questions}


def _closed(record: dict[str, Any], where: str) -> list[ClosedQuestion]:
    questions = []
    for k, pair in enumerate(record["vqa_pairs"], 1):
        options = {
            str(letter).strip().upper(): str(text) for letter, text in pair["options"].items()
        }
        answer = str(pair["answer"]).strip().upper()
        if answer not in options:
            raise ConfigError(f"{where}, question {k}: answer {answer!r} is not one of its options")
        questions.append(
            ClosedQuestion(
                question_id=f"{record['id']}_q{k}",
                record_id=str(record["id"]),
                image_path=str(record["image_path"]),
                question_type=str(pair["question_type"]),
                question=str(pair["question"]),
                options=options,
                answer=answer,
                trap=bool(pair.get("meta_trap", False)),
                original_answer=pair.get("meta_original_answer"),
            )
        )
    return questions


def _open(record: dict[str, Any], where: str) -> list[OpenQuestion]:
    questions = []
    for k, pair in enumerate(record["qa_pairs"], 1):
        questions.append(
            OpenQuestion(
                question_id=str(pair.get("question_id") or f"{record['id']}_q{k}"),
                record_id=str(record["id"]),
                image_path=str(record["image_path"]),
                question_type=str(pair["question_type"]),
                question=str(pair["question"]),
                reference_answer=str(pair["reference_answer"]),
                eval_keywords=tuple(str(w) for w in pair.get("eval_keywords") or ()),
            )
        )
    return questions


def parse_bench(data: Any, path: Path) -> Bench:
    """Questions of an already-parsed benchmark file; ConfigError says where it is malformed."""
    if not isinstance(data, list) or not data:
        raise ConfigError(
            f"{path}: not a benchmark file (expected a non-empty JSON list of records)"
        )
    questions: list[Question] = []
    kinds = set()
    for i, record in enumerate(data):
        where = (
            f"{path}: record {i + 1} (id {record.get('id') if isinstance(record, dict) else '?'})"
        )
        try:
            if "vqa_pairs" in record:
                kinds.add("closed")
                questions.extend(_closed(record, where))
            elif "qa_pairs" in record:
                kinds.add("open")
                questions.extend(_open(record, where))
            else:
                raise ConfigError(f"{where}: has neither vqa_pairs (closed) nor qa_pairs (open)")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None
    if len(kinds) != 1:
        raise ConfigError(f"{path}: mixes closed (vqa_pairs) and open (qa_pairs) records")
    ids = [q.question_id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"{path}: question id {dup!r} appears twice")
    return Bench(path=path, kind=kinds.pop(), questions=questions)


def load_bench(path: Path | str) -> Bench:
    """Read a closed or open benchmark file (official v1.0 format)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"benchmark file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    return parse_bench(data, path)


def rotations(question: ClosedQuestion) -> list[ClosedQuestion]:
    """CircularEval variants: the non-refusal options rotated, the refusal option kept last.

    Rotation r moves option texts r places down the letters (A's text goes to letter r, ...);
    letters stay in order and the answer letter follows its text. Rotation 0 is the question.
    """
    refusal = question.refusal_letter
    letters = [k for k in question.options if k != refusal]
    texts = [question.options[k] for k in letters]
    variants = []
    for r in range(len(letters)):
        moved = texts[-r:] + texts[:-r] if r else texts
        options = dict(zip(letters, moved, strict=True))
        if refusal is not None:
            options[refusal] = question.options[refusal]
        if question.answer == refusal:
            answer = question.answer
        else:
            answer = letters[(letters.index(question.answer) + r) % len(letters)]
        variants.append(replace(question, options=options, answer=answer, rotation=r))
    return variants
