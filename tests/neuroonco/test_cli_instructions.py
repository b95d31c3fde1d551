"""`neuroonco instructions` as a user runs it: a subprocess, one-line errors, nothing written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from neuroonco import store
from neuroonco.tools.synthetic_annotations import write_synthetic_store


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_instructions_command_writes_formats_and_summary(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    write_synthetic_store(db, 300, seed=4)
    out = tmp_path / "out"
    result = run_cli(
        "instructions",
        "--db",
        str(db),
        "--out",
        str(out),
        "--format",
        "llamafactory",
        "--format",
        "llava",
        "--seed",
        "7",
        "--trap-rate",
        "0.3",
    )
    assert result.returncode == 0, result.stderr
    assert "instructions" in result.stdout and "traps" in result.stdout
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["seed"] == 7 and stats["trap_rate"] == 0.3
    assert sorted(p.name for p in out.iterdir()) == [
        "llamafactory",
        "llava",
        "stats.json",
        "summary.md",
    ]
    again = run_cli("instructions", "--db", str(db), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    store.connect(empty).close()
    for args, words in (
        (["--db", str(empty)], "neuroonco annotate"),
        (["--db", str(tmp_path / "missing.db")], "no store"),
        (["--db", str(empty), "--format", "csv"], "unknown format"),
    ):
        result = run_cli("instructions", *args, "--out", str(tmp_path / "out"))
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "missing.db").exists()


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("select * from instructions order by rowid").fetchall()
    finally:
        conn.close()


def test_kill_9_mid_export_loses_nothing_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    write_synthetic_store(db, 4000, seed=2)
    first = run_cli("instructions", "--db", str(db), "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr
    before = _rows(db)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neuroonco.cli",
            "instructions",
            "--db",
            str(db),
            "--out",
            str(out),
            "--seed",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Killed once records are being written (and rows inserted on the background thread).
    deadline = time.monotonic() + 120
    written = False
    while time.monotonic() < deadline and proc.poll() is None and not written:
        written = any(
            p.stat().st_size > 0 for p in tmp_path.glob(".out.partial-*/llamafactory/*.jsonl")
        )
        time.sleep(0.01)
    assert written and proc.poll() is None, "the export ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert _rows(db) == before  # the killed export's rows never became the store's
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    conn.close()
    again = run_cli("instructions", "--db", str(db), "--out", str(out), "--seed", "5")
    assert again.returncode == 0, again.stderr
    assert list(tmp_path.glob(".out.*")) == []  # the killed run's hidden folder is gone
    assert len(_rows(db)) == len(before)
