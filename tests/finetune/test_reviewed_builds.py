"""The gold set wins in `neuroonco instructions` and `neuroonco bench build`: decisions recorded
through `neuroonco review --decide` on a real builtin run, then both builds read back."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils
from typer.testing import CliRunner

from neuroonco.cli import app
from neuroonco.finetune.names import NONE_OF_THE_ABOVE, display_name

runner = CliRunner()
OTHER_SIZE = {"small": "large", "medium": "small", "large": "small"}


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def decide(db: Path, slice_id: str, field: str, decision: str) -> None:
    cli("review", "--db", str(db), "--decide", slice_id, field, decision, "--reviewer", "ana")


def closed_answers(db: Path) -> dict[tuple[str, str], str]:
    """(slice id, task) -> the value the closed question's answer stands for."""
    out = {}
    rows = sqlite_utils.Database(db).query(
        "select slice_id, task, options, answer, original_answer from instructions"
        " where kind = 'closed'"
    )
    for row in rows:
        shown = json.loads(row["options"])[row["answer"]]
        out[(row["slice_id"], row["task"])] = (
            row["original_answer"] if shown == NONE_OF_THE_ABOVE else shown
        )
    return out


def test_reviewed_values_win_in_instructions_and_bench(store_copy: Path, tmp_path: Path):
    db = store_copy
    cli("instructions", "--db", str(db), "--out", str(tmp_path / "before"))
    conn = sqlite_utils.Database(db)
    before = closed_answers(db)
    split = {
        r["slice_id"]: r["split"] for r in conn.query("select slice_id, split from instructions")
    }
    # Subject ids are salted per store, so which slices the test split holds varies by build:
    # the edited slice is one of the test split (the benchmark's), the dropped one any other.
    lesion = [
        (r["slice_id"], json.loads(r["findings"]))
        for r in conn.query(
            "select slice_id, findings from annotations where status = 'accepted'"
            " and json_extract(findings, '$.size') is not null order by slice_id"
        )
    ]
    in_test = [x for x in lesion if split.get(x[0]) == "test"]
    assert in_test and len(lesion) >= 2, (len(lesion), len(in_test))
    sid, findings = in_test[0]
    dropped = next(
        x[0] for x in sorted(lesion, key=lambda x: split.get(x[0]) != "test") if x[0] != sid
    )
    other = next(f for f in ("shape", "spread", "location", "laterality") if findings.get(f))
    size = findings["size"]
    waiting = conn.execute(
        "select slice_id from annotations where status = 'needs_review' order by slice_id"
    ).fetchone()[0]
    assert all(sid != waiting for sid, _ in before)  # needs_review asks nothing by default

    decide(db, sid, "size", f"edit={OTHER_SIZE[size]}")  # against the mask
    decide(db, sid, other, "reject")
    decide(db, dropped, "slice", "reject")
    decide(db, waiting, "diagnosis", "edit=meningioma")
    decide(db, waiting, "slice", "accept")

    cli("instructions", "--db", str(db), "--out", str(tmp_path / "after"))
    after = closed_answers(db)
    assert before[(sid, "size")] == display_name("size", size)
    assert after[(sid, "size")] == display_name("size", OTHER_SIZE[size])
    assert (sid, other) in before and (sid, other) not in after
    assert any(s == dropped for s, _ in before) and not any(s == dropped for s, _ in after)
    assert after[(waiting, "diagnosis")] == display_name("diagnosis", "meningioma")
    # Untouched slices keep their questions and answers.
    untouched = {k: v for k, v in before.items() if k[0] not in (sid, dropped)}
    assert {k: after[k] for k in untouched} == untouched
    # The size explanation cites no area that contradicts the person's value.
    cot = conn.execute(
        "select response from instructions where slice_id = ? and task = 'size'", [sid]
    ).fetchone()[0]
    assert "of the image area" not in cot

    cli("bench", "build", "--db", str(db), "--out", str(tmp_path / "bench"))
    closed = json.loads((tmp_path / "bench" / "closed.json").read_text(encoding="utf-8"))
    by_image = {r["image_path"]: r for r in closed}
    record = by_image[f"images/{sid}.png"]
    sizes = [p for p in record["vqa_pairs"] if p["question_type"] == "size"]
    assert len(sizes) == 1
    pair = sizes[0]
    shown = pair.get("meta_original_answer") or pair["options"][pair["answer"]]
    assert shown == display_name("size", OTHER_SIZE[size])
    assert not any(p["question_type"] == other for p in record["vqa_pairs"])
    assert f"images/{dropped}.png" not in by_image


def test_numbers_are_cited_only_where_they_back_the_persons_value():
    from neuroonco.finetune.annotated import AnnotatedSlice, apply_review
    from neuroonco.finetune.templates import evidence

    m = {
        "area_fraction": 0.004,
        "size": "small",
        "circularity": 0.9,
        "elongation": 1.1,
        "shape": "round_oval",
        "intensity": {"t2": {"edge_sharpness": 0.8, "margins": "well_circumscribed"}},
    }
    item = AnnotatedSlice(
        slice_id="s",
        run_id="r",
        status="needs_review",
        subject_id="p",
        group_id=None,
        dataset=None,
        image_path="s.png",
        modality="t2",
        label="glioma",
        split_hint=None,
        findings={"lesion_found": True, "size": "small", "shape": "round_oval", "modality": "t2"},
        measurements=m,
    )
    out = apply_review(item, {"size": "large", "shape": "round_oval", "margins": "ill_defined"})
    assert out.reviewed and out.findings["size"] == "large"
    assert "area_fraction" not in out.measurements  # 0.4% does not make a large lesion
    assert out.measurements["circularity"] == 0.9  # it backs the accepted shape
    assert "edge_sharpness" not in out.measurements["intensity"]["t2"]
    said = evidence("size", "large", out.findings, out.measurements)
    assert "%" not in said and "large" in said
    gone = apply_review(item, {"lesion_found": False})
    assert gone.findings["size"] is None and gone.findings["shape"] is None
