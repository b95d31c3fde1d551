"""`neuroonco agreement` and `neuroonco review` as a user runs them."""

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
from tests.neuroonco.review.synthetic import RUN, lesion_measurements, make_run

RA, RB = "0:builtin", "1:builtin"
runner = CliRunner()


def synthetic(tmp_path: Path) -> Path:
    m = lesion_measurements(size="small")
    make_run(
        tmp_path / "c.db",
        {
            "s1": {
                "status": "needs_review",
                "measurements": m,
                "votes": {
                    RA: {"lesion_found": True, "size": "small", "margins": "ill_defined"},
                    RB: {"lesion_found": True, "size": "large", "margins": "well_circumscribed"},
                },
                "consensus": {"size": "small"},
            },
            "s2": {
                "status": "accepted",
                "measurements": m,
                "votes": {
                    RA: {"lesion_found": True, "size": "small"},
                    RB: {"lesion_found": True, "size": "small"},
                },
                "consensus": {"size": "small"},
            },
        },
    )
    return tmp_path / "c.db"


def test_agreement_writes_the_store_and_a_report(tmp_path):
    db = synthetic(tmp_path)
    result = runner.invoke(app, ["agreement", "--db", str(db)])
    assert result.exit_code == 0, result.output
    report = Path(result.output.strip().splitlines()[-1].split(": ", 1)[1])
    assert report.exists() and report.with_suffix(".png").exists()
    text = report.read_text()
    assert "| margins | opinion |" in text and "seed_rules" in text
    rows = list(
        sqlite_utils.Database(db).query(
            "SELECT value FROM review_agreement WHERE run_id = ? AND field = 'size' "
            "AND metric = 'accuracy_vs_measurement' AND rater = ?",
            [RUN, RB],
        )
    )
    assert rows == [{"value": 0.5}]
    again = runner.invoke(app, ["agreement", "--db", str(db), "--run", RUN])
    assert again.exit_code == 0
    per_run = (
        sqlite_utils.Database(db)
        .execute("SELECT count(DISTINCT created_at) FROM review_agreement")
        .fetchone()[0]
    )
    assert per_run == 1  # the second run replaced the first


def test_agreement_refuses_an_unknown_run_or_store(tmp_path):
    db = synthetic(tmp_path)
    with pytest.raises(NeuroOncoError, match="no run 'nope'"):
        runner.invoke(app, ["agreement", "--db", str(db), "--run", "nope"], catch_exceptions=False)
    with pytest.raises(NeuroOncoError, match="no store"):
        runner.invoke(app, ["agreement", "--db", str(tmp_path / "x.db")], catch_exceptions=False)


def test_review_queue_decide_and_interactive(tmp_path):
    db = synthetic(tmp_path)
    shown = runner.invoke(app, ["review", "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "1 slices" in shown.output and "s1" in shown.output and "disputed=size" in shown.output
    query = runner.invoke(app, ["review", "--db", str(db), "--disagrees", RB])
    assert "s1" in query.output
    ok = runner.invoke(
        app,
        [
            "review",
            "--db",
            str(db),
            "--decide",
            "s1",
            "margins",
            "edit=ill-defined",
            "--reviewer",
            "ana",
        ],
    )
    assert ok.exit_code == 0, ok.output
    with pytest.raises(NeuroOncoError, match="edit=VALUE"):
        runner.invoke(
            app,
            ["review", "--db", str(db), "--decide", "s1", "size", "maybe", "--reviewer", "ana"],
            catch_exceptions=False,
        )
    # Interactive: size -> accept, margins -> a bad edit then a good one (the queue now has s1
    # only with --include-reviewed, since a decision on it exists).
    answers = "a\ne fluffy\ne well circumscribed\n"
    inter = runner.invoke(
        app,
        ["review", "--db", str(db), "--include-reviewed", "--interactive", "--reviewer", "bo"],
        input=answers,
    )
    assert inter.exit_code == 0, inter.output
    assert "not recorded" in inter.output
    rows = list(
        sqlite_utils.Database(db).query(
            "SELECT field, decision, value, reviewer FROM reviews ORDER BY id"
        )
    )
    assert rows == [
        {"field": "margins", "decision": "edit", "value": '"ill_defined"', "reviewer": "ana"},
        {"field": "size", "decision": "accept", "value": '"small"', "reviewer": "bo"},
        {"field": "margins", "decision": "edit", "value": '"well_circumscribed"', "reviewer": "bo"},
    ]


def test_review_label_studio_round_trip_on_files(tmp_path):
    from PIL import Image

    db = synthetic(tmp_path)
    Image.new("L", (8, 8), 50).save(tmp_path / "s1.png")
    out = tmp_path / "ls"
    exported = runner.invoke(app, ["review", "--db", str(db), "--export-label-studio", str(out)])
    assert exported.exit_code == 0, exported.output
    tasks = json.loads((out / "tasks.json").read_text())
    # What Label Studio exports after a person submits the preselected consensus unchanged.
    tasks[0]["annotations"] = [
        {
            "id": 1,
            "completed_by": 3,
            "updated_at": "t1",
            "result": tasks[0]["predictions"][0]["result"],
        }
    ]
    (out / "export.json").write_text(json.dumps(tasks))
    imported = runner.invoke(
        app, ["review", "--db", str(db), "--import-label-studio", str(out / "export.json")]
    )
    assert imported.exit_code == 0, imported.output
    assert "Recorded 2 decisions" in imported.output
    rows = list(sqlite_utils.Database(db).query("SELECT decision, source FROM reviews"))
    assert rows == [{"decision": "accept", "source": "label_studio"}] * 2


@pytest.mark.slow
def test_agreement_on_a_builtin_two_describer_run(tmp_path):
    write_sample_tree(tmp_path / "src", seed=1, small=True)
    db = tmp_path / "n.db"
    env = {**os.environ, "COLUMNS": "120"}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "neuroonco.cli", *args],
            capture_output=True,
            encoding="utf-8",
            timeout=300,
            env=env,
        )

    ran = cli("annotate", str(tmp_path / "src"), "--db", str(db), "--describers", "builtin,builtin")
    assert ran.returncode == 0, ran.stderr
    result = cli("agreement", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "Agreement report:" in result.stdout
    # The builtin describer is deterministic: two copies agree wherever alpha is defined.
    alphas = list(
        sqlite_utils.Database(db).query(
            "SELECT value FROM review_agreement WHERE metric = 'krippendorff_alpha' "
            "AND value IS NOT NULL"
        )
    )
    assert alphas and all(r["value"] == 1.0 for r in alphas)
    bad = cli("agreement", "--db", str(db), "--run", "nope")
    assert bad.returncode == 2 and "no run 'nope'" in bad.stderr
