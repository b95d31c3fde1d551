"""`neuroonco annotate` as a user runs it: a subprocess on a source tree, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlite_utils

from neuroonco.tools.sample_tree import write_sample_tree


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def test_annotate_ingests_then_annotates_and_prints_a_summary(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=1, small=True)
    db = tmp_path / "out" / "n.db"
    result = run_cli("annotate", str(tmp_path / "src"), "--db", str(db), "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    assert "slices annotated" in result.stdout and "accepted" in result.stdout
    store = sqlite_utils.Database(db)
    unique = store.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
    assert store["annotations"].count == unique > 0
    # Same command again: nothing left to do, no model call.
    again = run_cli("annotate", str(tmp_path / "src"), "--db", str(db))
    assert again.returncode == 0, again.stderr
    assert store["annotations"].count == unique
    last = json.loads(
        store.execute("select summary from runs order by started_at desc limit 1").fetchone()[0]
    )
    assert last["done"] == 0 and last["calls"] == 0


def test_config_file_and_options(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=2, small=True)
    db = tmp_path / "n.db"
    assert run_cli("ingest", str(tmp_path / "src"), "--db", str(db)).returncode == 0
    config = tmp_path / "panel.json"
    config.write_text(json.dumps({"describers": ["builtin", "builtin"], "rule": "unanimous"}))
    result = run_cli("annotate", "--db", str(db), "--config", str(config), "--limit", "3")
    assert result.returncode == 0, result.stderr
    run = next(iter(sqlite_utils.Database(db)["runs"].rows))
    saved = json.loads(run["config"])
    assert saved["describers"] == ["builtin", "builtin"] and saved["rule"] == "unanimous"
    assert saved["limit"] == 3


def test_bad_spec_and_bad_config_are_one_clean_line(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    result = run_cli("annotate", "--db", str(db), "--describers", "gemini:pro")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gemini" in result.stderr and "builtin" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"describers": ["builtin"], "colour": "blue"}')
    result = run_cli("annotate", "--db", str(db), "--config", str(bad))
    assert result.returncode == 2 and "colour" in result.stderr


def test_missing_api_key_says_how_to_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "neuroonco.cli",
            "annotate",
            "--db",
            str(tmp_path / "n.db"),
            "--describers",
            "openai:gpt-4o-mini",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and "builtin" in result.stderr


def test_every_command_has_help() -> None:
    for command in ("ingest", "annotate"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "--db" in result.stdout
