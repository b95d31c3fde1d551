"""`bench audit`: the official MM-NeuroOnco-Bench v1.0 files as they are, and hand-made ones."""

from __future__ import annotations

import collections
import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from neuroonco.benchmark.audit import (
    KINDS,
    BenchFormatError,
    audit_bench,
    fix_bench,
    read_bench,
    render_markdown,
)
from neuroonco.commands.bench_audit import audit_command
from neuroonco.schemas.vocabulary import FIELDS, display_name

REFERENCE = Path("/work/shared/reference/mm-neuroonco-bench-v1.0")
CLOSED = REFERENCE / "mm-neuroonco_benchmark_closed_v1.0.json"
OPEN = REFERENCE / "mm-neuroonco_benchmark_open_v1.0.json"
official = pytest.mark.skipif(not CLOSED.exists(), reason="official benchmark files absent")
NONE = "None of the above"


def _issue_method(records: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The issue's string comparison (case, _/-, "weighted", "MRI", "tumor" ignored)."""

    def squash(text: str) -> str:
        text = re.sub(r"[_-]", " ", text.lower())
        return re.sub(r"[^a-z0-9]", "", re.sub(r"\b(weighted|mri|tumou?r)\b", " ", text))

    traps, duplicates = set(), set()
    for record in records:
        for k, pair in enumerate(record["vqa_pairs"], start=1):
            qid = f"{record['id']}_q{k}"
            offered = [v for v in pair["options"].values() if v != NONE]
            original = pair.get("meta_original_answer")
            if (
                pair.get("meta_trap")
                and original
                and any(squash(v) == squash(original) for v in offered)
            ):
                traps.add(qid)
            if max(collections.Counter(squash(v) for v in offered).values()) > 1:
                duplicates.add(qid)
    return traps, duplicates


@pytest.fixture(scope="module")
def closed() -> list[dict[str, Any]]:
    return read_bench(CLOSED)


@pytest.fixture(scope="module")
def closed_report(closed: list[dict[str, Any]]):
    return audit_bench(closed)


def _ids(report, kind: str) -> set[str]:
    return {f.question_id for f in report.findings if f.kind == kind}


def _finding(report, kind: str, qid: str):
    return next(f for f in report.findings if f.kind == kind and f.question_id == qid)


@official
def test_official_closed_file_traps_and_duplicates(closed, closed_report) -> None:
    issue_traps, issue_duplicates = _issue_method(closed)
    assert (len(issue_traps), len(issue_duplicates)) == (14, 38)  # the issue's numbers
    traps = _ids(closed_report, "trap_answer_still_offered")
    duplicates = _ids(closed_report, "duplicate_concept_options")
    # Comparing by concept finds every question the string comparison finds, and more (spellings
    # the strings miss: "T1" / "T1 without contrast", "DWI" / "Diffusion-weighted imaging", ...).
    assert issue_traps <= traps and issue_duplicates <= duplicates
    assert (len(traps), len(duplicates)) == (73, 311)
    assert closed_report.counts == {
        "trap_answer_still_offered": 73,
        "duplicate_concept_options": 311,
        "answer_not_of_type": 1,
        "trap_without_original": 0,
        "duplicate_question": 0,
        "image_in_train": 0,
    }
    assert closed_report.n_questions == 3190


@official
@pytest.mark.parametrize(
    ("qid", "removed", "offered"),
    [
        ("116_q2", "pituitary", "pituitary_tumor"),
        ("461_q1", "T2", "T2_weighted_MRI"),
        ("511_q2", "metastasis", "Metastasis"),
    ],
)
def test_issue_traps(closed_report, qid: str, removed: str, offered: str) -> None:
    finding = _finding(closed_report, "trap_answer_still_offered", qid)
    assert finding.options == [removed, offered]
    assert "trap_answer_still_offered" in closed_report.unsound[qid]


@official
@pytest.mark.parametrize(
    ("qid", "pair"),
    [
        ("137_q1", {"T2_weighted", "T2"}),
        ("16_q1", {"T1", "T1-weighted MRI"}),
        ("109_q2", {"schwannoma", "Schwannoma"}),
    ],
)
def test_issue_duplicates(closed_report, qid: str, pair: set[str]) -> None:
    finding = _finding(closed_report, "duplicate_concept_options", qid)
    assert set(finding.options) == pair


@official
def test_official_closed_file_other_findings(closed_report) -> None:
    # A trap whose removed answer the removed answer implies: "Center-Left Region" is inside
    # "Peripheral Left Region" (the left column), so that option is right.
    finding = _finding(closed_report, "trap_answer_still_offered", "33_q6")
    assert "implies" in finding.detail
    # A margin given as the answer to a shape question.
    finding = _finding(closed_report, "answer_not_of_type", "637_q5")
    assert finding.options == ["Well-circumscribed mass"] and "margins" in finding.detail
    # An answer that implies another option: both are right.
    finding = _finding(closed_report, "duplicate_concept_options", "34_q6")
    assert finding.options == ["Center-right region", "Peripheral right region"]
    # Round and Oval are one value of ours and one category of MM-NeuroOnco's (Round/Oval).
    assert "shape:round_oval" in _finding(closed_report, "duplicate_concept_options", "3_q4").detail


@official
def test_official_open_file_reads_and_is_sound() -> None:
    report = audit_bench(read_bench(OPEN))
    assert report.n_questions == 1215
    assert report.findings == []


@official
def test_fix_makes_the_official_file_pass_its_own_audit(closed, closed_report) -> None:
    before = copy.deepcopy(closed)
    fixed, changes = fix_bench(closed, closed_report)
    assert closed == before  # the input is not touched
    again = audit_bench(fixed)
    assert again.findings == []
    actions = collections.Counter(c["action"] for c in changes)
    assert actions["trap_made_answerable"] == 73
    assert actions["option_replaced"] >= 311
    # 116_q2: the respelled option is now the answer and the trap flag is gone.
    record = next(r for r in fixed if r["id"] == 116)
    pair = record["vqa_pairs"][1]
    assert pair["options"][pair["answer"]] == "pituitary_tumor"
    assert "meta_trap" not in pair and "meta_original_answer" not in pair
    # 109_q2: one spelling of schwannoma stays, the other became a distractor.
    pair = next(r for r in fixed if r["id"] == 109)["vqa_pairs"][1]
    assert sum(v.lower() == "schwannoma" for v in pair["options"].values()) == 1
    # Every change names a question and what was done.
    assert all(c["question_id"] and c["action"] for c in changes)
    assert sum(len(r["vqa_pairs"]) for r in fixed) == 3190 - actions["dropped"]


# --- hand-made files ---------------------------------------------------------------------------


def _closed_record(rid: int, image: str, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": rid, "image_path": image, "vqa_pairs": pairs}


def _q(qtype: str, options: list[str], answer: int, **extra: Any) -> dict[str, Any]:
    letters = "ABCDE"
    return {
        "question_type": qtype,
        "question": f"What is the {qtype}?",
        "options": {letters[i]: text for i, text in enumerate(options)},
        "answer": letters[answer],
        **extra,
    }


def test_our_display_names_make_sound_questions() -> None:
    # One display name per value: a question offering every value of a field is sound.
    records = [
        _closed_record(
            n,
            f"img{n}.png",
            [_q(field, [*[display_name(field, m) for m in FIELDS[field]][:4], NONE], 0)],
        )
        for n, field in enumerate(["modality", "diagnosis", "size", "shape", "spread", "location"])
    ]
    assert audit_bench(records).findings == []


def test_hand_made_findings() -> None:
    records = [
        _closed_record(
            1,
            "a.png",
            [
                _q("modality", ["T1", "T2", "FLAIR", "DWI", NONE], 4, meta_trap=True),
                _q("modality", ["T1", "T2", "FLAIR", "DWI", NONE], 0),
                _q("shape", ["Lobulated", "Irregular", "Linear", NONE], 1),
                _q(
                    "diagnosis",
                    ["Glioma", "Meningioma", "Lymphoma", NONE],
                    3,
                    meta_trap=True,
                    meta_original_answer="glioblastoma",
                ),
                _q(
                    "location",
                    ["Center-right region", "Left side of the image", NONE],
                    2,
                    meta_trap=True,
                    meta_original_answer="Right side of the image",
                ),
                _q("spread", ["Diffuse", "Solitary lesion", NONE], 0),
                _q("size", ["Small", "Large", NONE], 3),
            ],
        ),
        _closed_record(
            2, "b.png", [_q("diagnosis", ["Glioma", "Tumor, type unspecified", NONE], 0)]
        ),
    ]
    report = audit_bench(records)
    assert _ids(report, "trap_without_original") == {"1_q1"}
    assert _ids(report, "duplicate_question") == {"1_q2"}  # modality asked twice on a.png
    # glioblastoma removed, glioma offered: the removed answer implies it.
    assert _ids(report, "trap_answer_still_offered") == {"1_q4"}
    # "Right side of the image" removed, "Center-right region" offered: narrower, not implied.
    assert "1_q5" not in report.unsound
    # "Diffuse" is a known concept of another kind (not multifocal, not solitary) but is a spread
    # concept: not "of the wrong type"; a missing answer letter is.
    assert _ids(report, "answer_not_of_type") == {"1_q7"}
    # A tumour type makes "tumour of unspecified type" right too.
    assert "implies" in _finding(report, "duplicate_concept_options", "2_q1").detail
    data = report.to_json("x.json")
    assert set(data) == {"version", "bench", "n_questions", "counts", "findings", "unsound"}
    assert set(data["counts"]) == set(KINDS)
    assert all(set(f) == {"kind", "question_id", "detail", "options"} for f in data["findings"])
    assert data["unsound"]["1_q1"] == ["trap_without_original"]
    assert "trap_without_original" in render_markdown(report, "x.json")
    fixed, changes = fix_bench(records, report)
    assert audit_bench(fixed).findings == []
    dropped = {c["question_id"] for c in changes if c["action"] == "dropped"}
    assert dropped == {"1_q1", "1_q2", "1_q7"}
    # Later questions are renumbered and the change says so.
    assert {"question_id": "1_q3", "action": "renumbered", "detail": "now 1_q1"} in changes


def _png(path: Path, seed: int, compress: int = 6) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(
        path, compress_level=compress
    )


def _export(root: Path, splits: dict[str, list[str]]) -> Path:
    lf = root / "llamafactory"
    lf.mkdir(parents=True, exist_ok=True)
    info = {}
    for split, images in splits.items():
        info[f"neuroonco_{split}"] = {
            "file_name": f"{split}.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
        }
        lines = [
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "<image>What sequence?"},
                        {"role": "assistant", "content": "T2-weighted"},
                    ],
                    "images": [image],
                }
            )
            for image in images
        ]
        (lf / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (lf / "dataset_info.json").write_text(json.dumps(info))
    return root


def test_images_in_train_are_found_by_content(tmp_path: Path) -> None:
    bench_dir = tmp_path / "bench"
    _png(bench_dir / "images" / "seen.png", 1)
    _png(bench_dir / "images" / "unseen.png", 2)
    _png(bench_dir / "images" / "test_only.png", 3)
    lf = _export(
        tmp_path / "export",
        {"train": ["images/renamed.png", "images/other.png"], "test": ["images/held_out.png"]},
    )
    # The training copy has another name and another PNG encoding: same pixels.
    _png(lf / "llamafactory" / "images" / "renamed.png", 1, compress=1)
    _png(lf / "llamafactory" / "images" / "other.png", 4)
    _png(lf / "llamafactory" / "images" / "held_out.png", 3)  # a test split may share images
    records = [
        _closed_record(1, "images/seen.png", [_q("size", ["Small", "Large", NONE], 0)]),
        _closed_record(2, "images/unseen.png", [_q("size", ["Small", "Large", NONE], 0)]),
        _closed_record(3, "images/test_only.png", [_q("size", ["Small", "Large", NONE], 0)]),
    ]
    report = audit_bench(records, train_dir=lf, images_root=bench_dir)
    assert _ids(report, "image_in_train") == {"1_q1"}
    assert "train:images/renamed.png" in _finding(report, "image_in_train", "1_q1").detail
    # The export folder itself (holding dataset_info.json) works too.
    report = audit_bench(records, train_dir=lf / "llamafactory", images_root=bench_dir)
    assert _ids(report, "image_in_train") == {"1_q1"}
    with pytest.raises(BenchFormatError, match=r"dataset_info\.json"):
        audit_bench(records, train_dir=tmp_path, images_root=bench_dir)


# --- the command -------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("audit")(audit_command)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps "audit" a sub-command, as in the bench group
        pass

    return app


@official
def test_audit_command_on_the_official_file(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    result = CliRunner().invoke(_app(), ["audit", str(CLOSED), "--out", str(out), "--fix"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert set(data) == {"version", "bench", "n_questions", "counts", "findings", "unsound"}
    assert data["version"] == 1 and data["bench"] == str(CLOSED)
    assert data["counts"]["trap_answer_still_offered"] == 73
    assert data["unsound"]["116_q2"] == ["trap_answer_still_offered"]
    summary = (out / "audit.md").read_text(encoding="utf-8")
    assert "116_q2" in summary and "Changes made by --fix" in summary
    fixed = out / f"{CLOSED.stem}.fixed.json"
    changes = json.loads((out / "fix_changes.json").read_text(encoding="utf-8"))
    assert changes and audit_bench(read_bench(fixed)).findings == []


def test_audit_command_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bench.json"
    bad.write_text('{"not": "a list"}')
    result = CliRunner().invoke(_app(), ["audit", str(bad), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, BenchFormatError)
    assert "expected a JSON list of records" in str(result.exception)
    assert "\n" not in str(result.exception)
    assert not (tmp_path / "o" / "audit.json").exists()


def test_audit_command_with_train_export(tmp_path: Path) -> None:
    bench_dir = tmp_path / "bench"
    _png(bench_dir / "images" / "seen.png", 7)
    _png(bench_dir / "images" / "new.png", 8)
    export = _export(tmp_path / "export", {"train": ["images/copy.png"]})
    _png(export / "llamafactory" / "images" / "copy.png", 7, compress=9)
    bench = bench_dir / "closed.json"
    bench.write_text(
        json.dumps(
            [
                _closed_record(1, "images/seen.png", [_q("size", ["Small", "Large", NONE], 0)]),
                _closed_record(2, "images/new.png", [_q("size", ["Small", "Large", NONE], 1)]),
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "audit"
    args = ["audit", str(bench), "--out", str(out), "--train", str(export), "--fix"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert data["unsound"] == {"1_q1": ["image_in_train"]}
    fixed = json.loads((out / "closed.fixed.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in fixed] == [2]  # the seen image's only question was dropped
    changes = json.loads((out / "fix_changes.json").read_text(encoding="utf-8"))
    assert {"question_id": "1", "action": "record_dropped", "reason": "no question left"} in changes


def test_a_trap_offering_two_right_options_is_dropped() -> None:
    records = [
        _closed_record(
            5,
            "c.png",
            [
                _q("modality", ["T2", "FLAIR", "DWI", NONE], 0),
                _q(
                    "diagnosis",
                    ["Metastasis", "brain_metastasis", "Glioma", NONE],
                    3,
                    meta_trap=True,
                    meta_original_answer="metastasis",
                ),
                _q("shape", ["Round", "Lobulated", NONE], 1),
            ],
        )
    ]
    report = audit_bench(records)
    assert report.unsound == {"5_q2": ["trap_answer_still_offered", "duplicate_concept_options"]}
    fixed, changes = fix_bench(records, report)
    assert len(fixed[0]["vqa_pairs"]) == 2
    assert changes[0] == {
        "question_id": "5_q2",
        "action": "dropped",
        "reason": "trap offers 2 right options",
    }
    assert {"question_id": "5_q3", "action": "renumbered", "detail": "now 5_q2"} in changes
