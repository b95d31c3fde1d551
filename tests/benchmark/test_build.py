"""`bench build`: our benchmark in the official v1.0 structure, from the test split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlite_utils
import typer
from typer.testing import CliRunner

from neuroonco.commands.bench_build import build_command
from neuroonco.finetune.instructions import InstructionOptions, build_instructions
from neuroonco.finetune.names import NONE_OF_THE_ABOVE, concept_of
from tests.support.annotated import build_annotated_store, copy_store

REFERENCE = Path("/work/shared/reference/mm-neuroonco-bench-v1.0")
OFFICIAL_CLOSED = REFERENCE / "mm-neuroonco_benchmark_closed_v1.0.json"
OFFICIAL_OPEN = REFERENCE / "mm-neuroonco_benchmark_open_v1.0.json"


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    db = build_annotated_store(root / "a")
    app = typer.Typer()
    app.command()(build_command)
    result = CliRunner().invoke(app, ["--db", str(db), "--out", str(root / "bench")])
    assert result.exit_code == 0, result.output
    assert "closed" in result.output and "traps" in result.output
    return db, root / "bench"


def _official(path: Path) -> list[dict]:
    if not path.exists():
        pytest.skip("the official benchmark files are not on this machine")
    return json.loads(path.read_text(encoding="utf-8"))


def test_closed_matches_the_official_structure(bench):
    _, out = bench
    ours = json.loads((out / "closed.json").read_text(encoding="utf-8"))
    official = _official(OFFICIAL_CLOSED)
    assert ours and isinstance(ours, list)
    record_keys = {tuple(r) for r in official}
    pair_keys = {tuple(p) for r in official for p in r["vqa_pairs"]}
    official_types = {p["question_type"] for r in official for p in r["vqa_pairs"]}
    our_types = set()
    for record in ours:
        assert tuple(record) in record_keys  # id, image_path, vqa_pairs, in that order
        assert isinstance(record["id"], int) and (out / record["image_path"]).is_file()
        for pair in record["vqa_pairs"]:
            assert tuple(pair) in pair_keys
            our_types.add(pair["question_type"])
            letters = list(pair["options"])
            assert letters == [chr(65 + i) for i in range(len(letters))]
            assert pair["answer"] in pair["options"]
            texts = list(pair["options"].values())
            concepts = [concept_of(pair["question_type"], t) for t in texts]
            assert len(set(concepts)) == len(concepts)  # vocabulary-clean
            if len(texts) > 2:
                assert texts[-1] == NONE_OF_THE_ABOVE
            if pair.get("meta_trap"):
                assert pair["meta_trap"] is True and pair["options"][pair["answer"]] == texts[-1]
                original = concept_of(pair["question_type"], pair["meta_original_answer"])
                assert original not in concepts
            else:
                assert (
                    "meta_trap" not in pair and pair["options"][pair["answer"]] != NONE_OF_THE_ABOVE
                )
    # Which fields appear depends on what the test split's consensus holds (a field that is null
    # gets no question: tests/finetune covers one question per held field); every type we emit is
    # an official one or one of our vocabulary fields.
    fields = {"laterality", "margins", "texture", "enhancement", "edema", "signal_intensity"}
    assert "diagnosis" in our_types and our_types <= official_types | fields


def test_open_matches_the_official_structure(bench):
    _, out = bench
    ours = json.loads((out / "open.json").read_text(encoding="utf-8"))
    closed_ids = {r["id"] for r in json.loads((out / "closed.json").read_text(encoding="utf-8"))}
    official = _official(OFFICIAL_OPEN)
    record_keys = {tuple(r) for r in official}
    pair_keys = {tuple(p) for r in official for p in r["qa_pairs"]}
    types = {p["question_type"] for r in official for p in r["qa_pairs"]}
    assert ours
    for record in ours:
        assert tuple(record) in record_keys and record["id"] in closed_ids
        for k, pair in enumerate(record["qa_pairs"], start=1):
            assert tuple(pair) in pair_keys and pair["question_type"] in types
            assert pair["question_id"] == f"{record['id']}_q{k}"
            assert re.fullmatch(r"\d+_q\d+", pair["question_id"])
            assert pair["eval_keywords"] and all(
                w.lower() in pair["reference_answer"].lower() for w in pair["eval_keywords"]
            )


def test_built_from_the_test_split_only(bench, tmp_path):
    db, out = bench
    copy = copy_store(db, tmp_path / "s")
    build_instructions(InstructionOptions(db=copy, out=tmp_path / "i"))
    conn = sqlite_utils.Database(copy)
    test_slices = {
        r[0] for r in conn.execute("select slice_id from instructions where split='test'")
    }
    other = {r[0] for r in conn.execute("select slice_id from instructions where split!='test'")}
    ours = {
        Path(r["image_path"]).stem
        for r in json.loads((out / "closed.json").read_text(encoding="utf-8"))
    }
    assert ours == test_slices and not ours & other


def test_existing_out_refused(bench):
    db, out = bench
    app = typer.Typer()
    app.command()(build_command)
    result = CliRunner().invoke(app, ["--db", str(db), "--out", str(out)])
    assert result.exit_code != 0 and "--force" in str(result.exception)


def test_our_build_passes_the_audit_with_no_findings(bench, tmp_path):
    """Our benchmark has none of the official file's defects (issue: vocabulary and audit)."""
    from neuroonco.benchmark.audit import audit_bench
    from neuroonco.finetune.instructions import InstructionOptions, build_instructions

    db, out = bench
    for name in ("closed.json", "open.json"):
        records = json.loads((out / name).read_text(encoding="utf-8"))
        report = audit_bench(records, images_root=out)
        assert report.n_questions > 0
        assert report.findings == [], [f.__dict__ for f in report.findings][:5]
    # Built from the test split only: no benchmark image is among the training export's images.
    db_copy = copy_store(db, tmp_path / "store")
    build_instructions(
        InstructionOptions(db=db_copy, out=tmp_path / "train", formats=["llamafactory"])
    )
    closed = json.loads((out / "closed.json").read_text(encoding="utf-8"))
    report = audit_bench(closed, train_dir=tmp_path / "train", images_root=out)
    assert report.counts.get("image_in_train", 0) == 0
