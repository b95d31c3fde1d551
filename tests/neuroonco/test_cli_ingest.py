"""`neuroonco ingest` as a user runs it: the console script in a subprocess; help and errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from neuroonco.cli import app
from neuroonco.errors import NeuroOncoError

SCRIPT = Path(sys.executable).with_name("neuroonco")


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed console script (or ``python -m neuroonco.cli``), without test overrides."""
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "neuroonco.cli"]
    env = {k: v for k, v in os.environ.items() if k != "NEUROONCO_RAISE"}
    env["COLUMNS"] = "200"  # rich would wrap the help and table at the default 80
    return subprocess.run(
        [*cmd, *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        timeout=120,
    )


def _count(db: Path, sql: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchone()[0]


def test_help_lists_the_options():
    result = _run("ingest", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--db", "--per-volume", "--negatives", "--workers"):
        assert option in result.stdout


def test_missing_source_is_one_clean_line_and_exit_2(tmp_path):
    missing = tmp_path / "no_such_dir"
    result = _run("ingest", missing, "--db", tmp_path / "out" / "neuroonco.db")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:") and str(missing) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_option_value_is_a_usage_error(tmp_path, sample_tree):
    args = ["ingest", str(sample_tree.root), "--db", str(tmp_path / "x.db"), "--per-volume", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--per-volume" in result.output
    assert not (tmp_path / "x.db").exists()


def test_under_tests_the_error_raises_instead(tmp_path):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "missing"), "--db", "x.db"])
    assert isinstance(result.exception, NeuroOncoError)


def test_ingest_with_options_then_rerun_skips_everything(tmp_path, sample_tree):
    db = tmp_path / "out" / "neuroonco.db"
    brats = sample_tree.root / "BraTS2021_TrainingData"
    args = ("ingest", brats, "--db", db, "--per-volume", "2", "--negatives", "1", "--workers", "1")
    first = _run(*args)
    assert first.returncode == 0, first.stderr
    # 2 cases x (2 tumour + 1 tumour-free positions) x 4 sequences
    assert _count(db, "select count(*) from slices") == 24
    assert _count(db, "select count(*) from slices where label = 'no_tumor'") == 8
    assert _count(db, "select count(distinct group_id) from slices") == 6
    assert "slices by layout: brats2021: 24" in first.stdout
    again = _run(*args)
    assert again.returncode == 0, again.stderr
    assert _count(db, "select count(*) from slices") == 24
    row = next(line for line in again.stdout.splitlines() if line.count("│") >= 5)
    assert [c.strip() for c in row.strip("│ ").split("│")] == ["0", "0", "0", "2", "0"]
