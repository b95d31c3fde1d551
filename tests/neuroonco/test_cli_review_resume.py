"""`neuroonco annotate --review` then `neuroonco review --resume` as a researcher runs them:
the run reports what waits, the queue is listed, decisions come from a prompt or a file, and
the reviewed slices feed the instruction set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from typer.testing import CliRunner

from neuroonco.cli import app
from neuroonco.errors import NeuroOncoError
from neuroonco.tools.sample_tree import write_sample_tree

runner = CliRunner()


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample tree annotated with --review by the CLI (a subprocess); returns the DB."""
    root = tmp_path_factory.mktemp("resume")
    write_sample_tree(root / "src", seed=1, small=True)
    db = root / "n.db"
    cmd = [sys.executable, "-m", "neuroonco.cli", "annotate", str(root / "src"), "--db", str(db)]
    ran = subprocess.run(
        [*cmd, "--review"],
        capture_output=True,
        encoding="utf-8",
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert ran.returncode == 0, ran.stderr
    assert "slices await review: run `neuroonco review --db" in ran.stdout
    assert "paused for review" in ran.stdout
    return db


def copy_of(db: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "s"
    target.mkdir()
    for path in db.parent.iterdir():
        if path.is_file() and path.name.startswith(db.stem):
            shutil.copy(path, target / path.name)
    shutil.copytree(db.parent / f"{db.stem}_images", target / f"{db.stem}_images")
    return target / db.name


def paused_ids(db: Path) -> list[str]:
    rows = sqlite_utils.Database(db).query(
        "select slice_id from annotations where status = 'needs_review' order by agreement,"
        " slice_id"
    )
    return [r["slice_id"] for r in rows]


def test_resume_lists_then_asks_at_a_prompt(reviewed_run: Path, tmp_path: Path):
    db = copy_of(reviewed_run, tmp_path)
    waiting = paused_ids(db)
    assert waiting
    listed = runner.invoke(app, ["review", "--db", str(db), "--resume"])
    assert listed.exit_code == 0, listed.output
    assert f"{len(waiting)} slices await review" in listed.output
    assert all(sid in listed.output for sid in waiting) and "--decisions" in listed.output
    # First slice: a bad value, then an edit; second (if any): skipped; then quit.
    answers = "size=purple\nlesion_found=true size=medium\ns\nq\n"
    asked = runner.invoke(
        app,
        ["review", "--db", str(db), "--resume", "--interactive", "--reviewer", "ana"],
        input=answers,
    )
    assert asked.exit_code == 0, asked.output
    assert "not recorded" in asked.output and "Resumed 1 slices (1 accepted" in asked.output
    store = sqlite_utils.Database(db)
    status, size = store.execute(
        "select status, json_extract(findings, '$.size') from annotations where slice_id = ?",
        [waiting[0]],
    ).fetchone()
    assert (status, size) == ("accepted", "medium")
    sources = {r["source"] for r in store.query("select source from reviews")}
    assert sources == {"interrupt"}
    again = runner.invoke(app, ["review", "--db", str(db), "--resume"])
    assert waiting[0] not in again.output  # resumed once, not asked again


def test_a_bad_decisions_file_is_one_line_and_changes_nothing(reviewed_run: Path, tmp_path: Path):
    db = copy_of(reviewed_run, tmp_path)
    waiting = paused_ids(db)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"slice_id": waiting[0], "decision": "accept"})
        + "\n"
        + json.dumps({"slice_id": "nope", "decision": "accept"})
        + "\n"
    )
    args = ["review", "--db", str(db), "--resume", "--decisions", str(bad), "--reviewer", "ana"]
    with pytest.raises(NeuroOncoError, match="entry 2: slice nope is not awaiting review"):
        runner.invoke(app, args, catch_exceptions=False)
    assert paused_ids(db) == waiting
    assert sqlite_utils.Database(db)["reviews"].count == 0


def test_resumed_slices_feed_the_instruction_set(reviewed_run: Path, tmp_path: Path):
    db = copy_of(reviewed_run, tmp_path)
    waiting = paused_ids(db)
    decisions = tmp_path / "d.json"
    decisions.write_text(
        json.dumps(
            [
                {
                    "slice_id": sid,
                    "fields": {"lesion_found": "true", "diagnosis": "meningioma"},
                    "reviewer": "ana",
                }
                for sid in waiting
            ]
        )
    )
    ok = runner.invoke(app, ["review", "--db", str(db), "--resume", "--decisions", str(decisions)])
    assert ok.exit_code == 0, ok.output
    assert f"Resumed {len(waiting)} slices" in ok.output
    out = tmp_path / "instr"
    built = runner.invoke(app, ["instructions", "--db", str(db), "--out", str(out)])
    assert built.exit_code == 0, built.output
    rows = sqlite_utils.Database(db).query(
        "select slice_id, options, answer from instructions where task = 'diagnosis'"
        " and kind = 'closed'"
    )
    asked = {r["slice_id"]: json.loads(r["options"])[r["answer"]] for r in rows}
    assert {asked[sid] for sid in waiting} <= {"Meningioma", "None of the above"}
