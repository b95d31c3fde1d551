"""Audit a benchmark file in the official MM-NeuroOnco-Bench v1.0 format: which questions are sound.

Options are compared by concept, not by string (:func:`~neuroonco.schemas.vocabulary.read_value`:
"T2_weighted" and "T2" are one concept, "DWI" and "Diffusion-weighted imaging" another), which
finds what a string comparison misses:

- ``trap_answer_still_offered``: a trap (right option removed, the refusal option marked right)
  still offers the removed answer under another spelling, or an option the removed answer implies
  (removed "glioblastoma", offered "glioma"; removed "Center-right region", offered "Right side of
  the image"), so a model that picks it is right and is scored wrong;
- ``duplicate_concept_options``: two options spell one concept: both right, or the pair gives
  the answer away;
- ``answer_not_of_type``: the answer (or a trap's removed answer) is not a value of the question's
  type (a margin as the answer to a shape question), or names no option;
- ``trap_without_original``: a trap flag without the removed answer;
- ``duplicate_question``: the same question twice on one image (closed: one question type twice;
  open: the same question text); the first stays sound, the repeats are reported;
- ``image_in_train``: an image of the benchmark is in a training export (compared by pixel
  content, not path).

Pure logic: :func:`audit_bench` reads records and returns an :class:`AuditReport`;
:func:`fix_bench` returns a cleaned copy and the list of changes. The command is
``neuroonco bench audit`` (neuroonco/commands/bench_audit.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroonco.errors import NeuroOncoError
from neuroonco.schemas.oov import OOV_VERSION
from neuroonco.schemas.vocabulary import FIELDS, Reading, display_name, read_value

AUDIT_VERSION = 1
KINDS: tuple[str, ...] = (
    "trap_answer_still_offered",
    "duplicate_concept_options",
    "answer_not_of_type",
    "trap_without_original",
    "duplicate_question",
    "image_in_train",
)
# Splits of a training export that a model has seen; a test split may share the benchmark.
TRAINING_SPLITS = ("train", "val")
_REFUSAL = re.compile(r"^\s*none of the (above|options|these)\s*\.?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    kind: str
    question_id: str
    detail: str
    options: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "question_id": self.question_id,
            "detail": self.detail,
            "options": list(self.options),
        }


@dataclass
class AuditReport:
    """What :func:`audit_bench` found; ``to_json`` is the audit.json contract (INTERFACES.md)."""

    n_questions: int
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Findings per kind; a question has at most one finding of each kind."""
        counts = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    @property
    def unsound(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for finding in self.findings:
            kinds = out.setdefault(finding.question_id, [])
            if finding.kind not in kinds:
                kinds.append(finding.kind)
        return out

    def to_json(self, bench: str) -> dict[str, Any]:
        return {
            "version": AUDIT_VERSION,
            "bench": bench,
            "n_questions": self.n_questions,
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
            "unsound": self.unsound,
        }


@dataclass(frozen=True)
class Question:
    """One question of a benchmark file, where it sits, and its id."""

    question_id: str
    record: int  # index in the records list
    pair: int  # index in the record's vqa_pairs / qa_pairs
    closed: bool
    image_path: str
    data: dict[str, Any]


class BenchFormatError(NeuroOncoError, ValueError):
    """The file is not in the official benchmark format; the message says what is wrong."""


def read_bench(path: Path) -> list[dict[str, Any]]:
    """The records of an official-format benchmark file (closed or open), checked."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchFormatError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchFormatError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, list):
        raise BenchFormatError(
            f"{path}: expected a JSON list of records, got {type(data).__name__}"
        )
    for n, record in enumerate(data):
        if not isinstance(record, dict) or "id" not in record:
            raise BenchFormatError(f"{path}: record {n} has no 'id'")
        pairs = record.get("vqa_pairs", record.get("qa_pairs"))
        if not isinstance(pairs, list):
            raise BenchFormatError(
                f"{path}: record {record['id']} has no vqa_pairs or qa_pairs list"
            )
        for k, pair in enumerate(pairs, start=1):
            if not isinstance(pair, dict):
                raise BenchFormatError(
                    f"{path}: record {record['id']} question {k} is not an object"
                )
            if "vqa_pairs" in record and not isinstance(pair.get("options"), dict):
                raise BenchFormatError(
                    f"{path}: closed question {record['id']}_q{k} has no options object"
                )
    return data


def iter_questions(records: list[dict[str, Any]]) -> Iterator[Question]:
    """Every question and its official id: ``<id>_q<k>`` (closed), ``question_id`` (open)."""
    for r, record in enumerate(records):
        closed = "vqa_pairs" in record
        pairs = record.get("vqa_pairs") if closed else record.get("qa_pairs")
        for p, pair in enumerate(pairs or []):
            default = f"{record['id']}_q{p + 1}"
            qid = default if closed else str(pair.get("question_id") or default)
            yield Question(qid, r, p, closed, str(record.get("image_path", "")), pair)


def is_refusal(text: object) -> bool:
    """Whether an option is the refusal option ("None of the above")."""
    return isinstance(text, str) and bool(_REFUSAL.match(text))


def _field_of(question: Question) -> str | None:
    name = str(question.data.get("question_type", "")).strip().lower()
    return name if name in FIELDS else None


def _read(field_name: str | None, text: object) -> Reading | None:
    if field_name is None or not isinstance(text, str):
        return None
    try:
        reading = read_value(field_name, text)
    except ValueError:
        return None
    return None if reading.kind == "missing" else reading


def _read_other(field_name: str | None, text: str) -> Reading | None:
    for other in FIELDS:
        if other != field_name:
            reading = _read(other, text)
            if reading is not None:
                return reading
    return None


def _concept(field_name: str | None, text: str) -> str:
    """What an option means: its concept in its own field, else another field's, else the text."""
    reading = _read(field_name, text) or _read_other(field_name, text)
    if reading is not None:
        return reading.concept
    return "text:" + re.sub(r"[^a-z0-9]", "", text.lower())


def _implies(narrow: Reading, broad: Reading) -> bool:
    """Whether ``narrow`` being right makes ``broad`` right (a kind of it, a region inside it)."""
    if narrow.concept == broad.concept:
        return False
    if narrow.broader is not None and narrow.broader == broad.concept:
        return True
    if (
        narrow.field == broad.field == "diagnosis"
        and broad.value == "tumor"
        and narrow.kind == "value"
        and narrow.value not in ("tumor", "no_tumor")
    ):
        return True  # every tumour type is a tumour: "Glioma" makes "Tumor" right
    if narrow.field == broad.field == "location" and narrow.cells and broad.cells:
        return set(narrow.cells) < set(broad.cells)
    return False


def _offered(pair: dict[str, Any]) -> list[tuple[str, str]]:
    """The (letter, text) options other than the refusal option."""
    options = pair.get("options") or {}
    return [(k, v) for k, v in options.items() if isinstance(v, str) and not is_refusal(v)]


def _audit_closed(question: Question) -> list[Finding]:
    pair, qid = question.data, question.question_id
    name = _field_of(question)
    options = pair.get("options") or {}
    offered = _offered(pair)
    findings: list[Finding] = []
    trap = bool(pair.get("meta_trap"))
    original = pair.get("meta_original_answer")
    if trap and (not isinstance(original, str) or not original.strip()):
        findings.append(
            Finding(
                "trap_without_original",
                qid,
                "meta_trap is set but there is no meta_original_answer",
                [],
            )
        )
    elif trap:
        removed = _read(name, original)
        removed_key = _concept(name, original)
        reasons: list[str] = []
        still: list[str] = []
        for _letter, text in offered:
            option = _read(name, text)
            if _concept(name, text) == removed_key:
                why = "the same text" if text.strip() == original.strip() else removed_key
                reasons.append(f"{text!r} (same concept: {why})")
                still.append(text)
            elif removed is not None and option is not None and _implies(removed, option):
                reasons.append(f"{text!r}, which it implies")
                still.append(text)
        if still:
            findings.append(
                Finding(
                    "trap_answer_still_offered",
                    qid,
                    f"trap removed {original!r} but offers " + "; ".join(reasons),
                    [original, *still],
                )
            )
        if name is not None and removed is None:
            findings.append(
                Finding(
                    "answer_not_of_type",
                    qid,
                    f"removed answer {original!r} is not a {name} value",
                    [original],
                )
            )
    repeated = _duplicates(name, pair)
    if repeated:
        findings.append(
            Finding(
                "duplicate_concept_options",
                qid,
                "; ".join(why for _letters, why in repeated),
                [options[letter] for letters, _why in repeated for letter in letters],
            )
        )
    answer = pair.get("answer")
    if answer not in options:
        findings.append(
            Finding("answer_not_of_type", qid, f"answer {answer!r} names no option", [])
        )
    elif not trap and name is not None and not is_refusal(options[answer]):
        text = options[answer]
        if _read(name, text) is None:
            other = _read_other(name, text)
            what = f" (it is {other.field}: {other.concept})" if other is not None else ""
            findings.append(
                Finding(
                    "answer_not_of_type",
                    qid,
                    f"answer {text!r} is not a {name} value{what}",
                    [text],
                )
            )
    elif name is None and not trap:
        findings.append(
            Finding(
                "answer_not_of_type",
                qid,
                f"question type {pair.get('question_type')!r} is not a vocabulary field",
                [],
            )
        )
    return findings


def _image_hash(path: Path) -> str | None:
    """A digest of the decoded pixels (so a re-saved file matches), else of the bytes."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            pixels = image.convert("L") if image.mode not in ("L", "RGB") else image
            digest = hashlib.sha256(f"{pixels.mode}{pixels.size}".encode())
            digest.update(pixels.tobytes())
            return "px:" + digest.hexdigest()
    except Exception:  # not an image Pillow reads: fall back to the bytes
        return "b:" + hashlib.sha256(data).hexdigest()


def training_images(train_dir: Path) -> dict[str, str]:
    """Pixel hash -> "<split>:<image path>" for every image of a LLaMA-Factory export's training
    splits (``dataset_info.json`` in ``train_dir`` or ``train_dir/llamafactory``)."""
    root = Path(train_dir)
    if not (root / "dataset_info.json").exists() and (root / "llamafactory").is_dir():
        root = root / "llamafactory"
    info_path = root / "dataset_info.json"
    if not info_path.exists():
        raise BenchFormatError(f"{train_dir}: no dataset_info.json (not a llamafactory export)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchFormatError(f"{info_path}: not JSON ({exc})") from None
    hashes: dict[str, str] = {}
    for name, entry in info.items():
        split = name.rsplit("_", 1)[-1]
        if split not in TRAINING_SPLITS or not isinstance(entry, dict):
            continue
        split_file = root / str(entry.get("file_name", f"{split}.jsonl"))
        if not split_file.exists():
            raise BenchFormatError(f"{split_file}: listed in dataset_info.json but missing")
        images_key = (entry.get("columns") or {}).get("images", "images")
        for line in split_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for image in json.loads(line).get(images_key) or []:
                digest = _image_hash(root / image)
                if digest is not None:
                    hashes.setdefault(digest, f"{split}:{image}")
    return hashes


def audit_bench(
    records: list[dict[str, Any]],
    train_dir: Path | None = None,
    images_root: Path | None = None,
) -> AuditReport:
    """Audit benchmark ``records`` (official format, closed or open).

    ``train_dir``: a LLaMA-Factory export whose training images must not be in the benchmark;
    ``images_root``: the folder image paths are relative to (the benchmark file's folder).
    """
    questions = list(iter_questions(records))
    findings: list[Finding] = []
    notes: list[str] = [f"out-of-vocabulary table version {OOV_VERSION}"]
    first_seen: dict[tuple[str, str], str] = {}
    for question in questions:
        if question.closed:
            findings.extend(_audit_closed(question))
            key = (question.image_path, "type:" + str(question.data.get("question_type", "")))
        else:
            text = re.sub(r"\s+", " ", str(question.data.get("question", "")).strip().lower())
            key = (question.image_path, "text:" + text)
        if key in first_seen:
            findings.append(
                Finding(
                    "duplicate_question",
                    question.question_id,
                    f"repeats {first_seen[key]} on image {question.image_path!r}",
                    [],
                )
            )
        else:
            first_seen[key] = question.question_id
    if train_dir is not None:
        trained = training_images(train_dir)
        root = Path(images_root) if images_root is not None else Path(".")
        digests: dict[str, str | None] = {}
        missing = 0
        for question in questions:
            path = question.image_path
            if path not in digests:
                digests[path] = _image_hash(root / path)
                missing += digests[path] is None
            digest = digests[path]
            if digest is not None and digest in trained:
                findings.append(
                    Finding(
                        "image_in_train",
                        question.question_id,
                        f"image {path!r} is the training image {trained[digest]}",
                        [],
                    )
                )
        if missing:
            notes.append(f"{missing} benchmark images not found under {root}: not compared")
    return AuditReport(len(questions), findings, notes)


# --- --fix -------------------------------------------------------------------------------------


def _distractor(
    name: str, pair: dict[str, Any], avoid: list[Reading], pool: list[str]
) -> str | None:
    """An option text for a replaced duplicate: none of the offered concepts, and neither implied
    by nor implying the answer or the removed answer (``avoid``) or an offered option.

    Vocabulary values come first (in their display names), then the file's own options of this
    question type, most used first (known out-of-vocabulary concepts such as "Linear" are fair
    distractors: the seed uses them).
    """
    taken = {_concept(name, text) for _l, text in _offered(pair)}
    offered = [r for _l, t in _offered(pair) if (r := _read(name, t)) is not None]
    members = [m.value for m in FIELDS[name] if not (name == "diagnosis" and m.value == "tumor")]
    candidates = [display_name(name, m) for m in members] + pool
    for text in candidates:
        candidate = _read(name, text)
        if candidate is None or candidate.concept in taken or is_refusal(text):
            continue
        if name == "diagnosis" and candidate.value == "tumor":
            continue  # every tumour diagnosis implies it
        if not any(_clash(candidate, other) for other in [*avoid, *offered]):
            return text
    return None


def _clash(a: Reading, b: Reading) -> bool:
    """Whether a distractor ``a`` could be right together with ``b`` (or be ``b`` respelled)."""
    if a.concept == b.concept or _implies(a, b) or _implies(b, a):
        return True
    if a.kind == b.kind == "value" and a.value == b.value:
        return True  # one vocabulary value: "glioblastoma" and "astrocytoma" are both glioma
    return bool(a.cells and b.cells and set(a.cells) & set(b.cells))


def fix_bench(
    records: list[dict[str, Any]], report: AuditReport
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A cleaned copy of ``records`` and the changes made, one dict per change.

    A broken trap becomes answerable (its one respelled option is the answer, the trap flag goes)
    or, when it offers several, is dropped; a duplicate-concept option is replaced by a distractor
    (dropped when none fits); every other unsound question is dropped. Dropping renumbers the later
    closed questions of a record (ids are positional): each change says so.
    """
    fixed = copy.deepcopy(records)
    changes: list[dict[str, Any]] = []
    by_id = {q.question_id: q for q in iter_questions(fixed)}
    unsound = report.unsound
    drop: set[tuple[int, int]] = set()
    pools: dict[str, list[str]] = {}
    for qid, kinds in unsound.items():
        question = by_id.get(qid)
        if question is None:
            continue
        pair, name = question.data, _field_of(question)
        fixable = {"trap_answer_still_offered", "duplicate_concept_options"}
        if not set(kinds) <= fixable or name is None:
            drop.add((question.record, question.pair))
            changes.append({"question_id": qid, "action": "dropped", "reason": ", ".join(kinds)})
            continue
        if "trap_answer_still_offered" in kinds:
            original = pair["meta_original_answer"]
            removed = _read(name, original)
            key = _concept(name, original)
            letters = [
                letter
                for letter, text in _offered(pair)
                if _concept(name, text) == key
                or (
                    removed is not None
                    and (o := _read(name, text)) is not None
                    and _implies(removed, o)
                )
            ]
            if len(letters) != 1:
                drop.add((question.record, question.pair))
                changes.append(
                    {
                        "question_id": qid,
                        "action": "dropped",
                        "reason": f"trap offers {len(letters)} right options",
                    }
                )
                continue
            before = pair["options"][pair["answer"]]
            pair["answer"] = letters[0]
            pair.pop("meta_trap", None)
            pair.pop("meta_original_answer", None)
            changes.append(
                {
                    "question_id": qid,
                    "action": "trap_made_answerable",
                    "detail": f"answer {before!r} -> {letters[0]}: "
                    f"{pair['options'][letters[0]]!r}; meta_trap removed",
                }
            )
        pool = pools.setdefault(name, _option_pool(records, name))
        if _duplicates(name, pair) and not _replace_duplicates(name, pair, qid, changes, pool):
            drop.add((question.record, question.pair))
            changes.append(
                {
                    "question_id": qid,
                    "action": "dropped",
                    "reason": "no distractor left to replace a duplicate option",
                }
            )
    return _drop(fixed, drop, changes), changes


def _option_pool(records: list[dict[str, Any]], name: str) -> list[str]:
    """The option texts of question type ``name`` in ``records``, most used first."""
    counts: Counter[str] = Counter()
    for question in iter_questions(records):
        if question.closed and _field_of(question) == name:
            counts.update(t for _l, t in _offered(question.data))
    return [text for text, _n in counts.most_common()]


def _duplicates(name: str | None, pair: dict[str, Any]) -> list[tuple[list[str], str]]:
    """Groups of option letters that are right together, each with why: options spelling one
    concept, or an option the answer implies (answer "Center-right region", option "Peripheral
    right region": the right column holds it)."""
    options = pair.get("options") or {}
    groups: dict[str, list[str]] = {}
    for letter, text in _offered(pair):
        groups.setdefault(_concept(name, text), []).append(letter)
    out = [
        (
            letters,
            f"{len(letters)} options spell one concept ({concept}): "
            + ", ".join(repr(options[x]) for x in letters),
        )
        for concept, letters in groups.items()
        if len(letters) > 1
    ]
    answer_letter = pair.get("answer")
    answer = _read(name, options.get(answer_letter)) if not pair.get("meta_trap") else None
    if answer is not None:
        for letter, text in _offered(pair):
            option = _read(name, text)
            if letter != answer_letter and option is not None and _implies(answer, option):
                out.append(
                    (
                        [answer_letter, letter],
                        f"the answer {options[answer_letter]!r} implies the option {text!r}: "
                        "both are right",
                    )
                )
    return out


def _replace_duplicates(
    name: str, pair: dict[str, Any], qid: str, changes: list[dict[str, Any]], pool: list[str]
) -> bool:
    options = pair["options"]
    avoid = [
        r
        for r in (
            _read(name, options.get(pair.get("answer"))),
            _read(name, pair.get("meta_original_answer")),
        )
        if r is not None
    ]
    replaced: set[str] = set()
    for letters, why in _duplicates(name, pair):
        keep = pair["answer"] if pair.get("answer") in letters else letters[0]
        for letter in letters:
            if letter == keep or letter in replaced:
                continue
            replaced.add(letter)
            distractor = _distractor(name, pair, avoid, pool)
            if distractor is None:
                return False
            changes.append(
                {
                    "question_id": qid,
                    "action": "option_replaced",
                    "detail": f"{letter}: {options[letter]!r} -> {distractor!r} ({why})",
                }
            )
            options[letter] = distractor
    return True


def _drop(
    records: list[dict[str, Any]], drop: set[tuple[int, int]], changes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r, record in enumerate(records):
        key = "vqa_pairs" if "vqa_pairs" in record else "qa_pairs"
        pairs = record.get(key) or []
        kept = [pair for p, pair in enumerate(pairs) if (r, p) not in drop]
        if key == "vqa_pairs" and len(kept) != len(pairs):
            for new, (p, _pair) in enumerate(
                [(p, pair) for p, pair in enumerate(pairs) if (r, p) not in drop], start=1
            ):
                if new != p + 1:
                    changes.append(
                        {
                            "question_id": f"{record['id']}_q{p + 1}",
                            "action": "renumbered",
                            "detail": f"now {record['id']}_q{new}",
                        }
                    )
        if kept:
            out.append({**record, key: kept})
        elif pairs:
            changes.append(
                {
                    "question_id": str(record["id"]),
                    "action": "record_dropped",
                    "reason": "no question left",
                }
            )
    return out


def render_markdown(
    report: AuditReport, bench: str, changes: list[dict[str, Any]] | None = None
) -> str:
    """The human summary written beside audit.json."""
    unsound = report.unsound
    lines = [
        f"# Audit of {bench}",
        "",
        f"{report.n_questions} questions; {len(unsound)} unsound "
        f"({report.n_questions - len(unsound)} sound).",
        "",
        "| finding | questions |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in report.counts.items()),
        "",
    ]
    for note in report.notes:
        lines.append(f"- {note}")
    for kind in KINDS:
        found = [f for f in report.findings if f.kind == kind]
        if not found:
            continue
        lines += ["", f"## {kind} ({len(found)})", ""]
        lines += [f"- `{f.question_id}`: {f.detail}" for f in found]
    if changes is not None:
        lines += ["", f"## Changes made by --fix ({len(changes)})", ""]
        for change in changes:
            what = change.get("detail") or change.get("reason", "")
            lines.append(f"- `{change['question_id']}` {change['action']}: {what}")
    return "\n".join(lines) + "\n"
