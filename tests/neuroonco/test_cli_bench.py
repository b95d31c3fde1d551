"""`neuroonco bench run | score | export` as a user runs them: the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from neuroonco.benchmark.runner import read_predictions
from neuroonco.cli import app
from neuroonco.errors import ConfigError
from tests.benchmark.conftest import small_bench  # noqa: F401  (fixture)

SCRIPT = Path(sys.executable).with_name("neuroonco")


def _run(*args: str | Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "neuroonco.cli"]
    base = {k: v for k, v in os.environ.items() if k != "NEUROONCO_RAISE"}
    base["COLUMNS"] = "200"
    return subprocess.run(
        [*cmd, *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        env={**base, **(env or {})},
        timeout=180,
    )


def test_run_score_export_with_the_baselines(small_bench: Path, tmp_path: Path) -> None:  # noqa: F811
    closed = small_bench / "closed.json"
    files = []
    runner = CliRunner()
    for kind in ("random", "refuse", "prior"):
        out = tmp_path / f"{kind}.jsonl"
        if kind == "random":  # once as a user runs it: the console script, progress on stderr
            result = _run("bench", "run", closed, "--model", f"baseline:{kind}", "--out", out)
            assert result.returncode == 0, result.stderr
            assert "7 answered" in result.stderr and "7/7" in result.stderr
        else:
            args = ["bench", "run", str(closed), "--model", f"baseline:{kind}", "--out", str(out)]
            assert runner.invoke(app, args).exit_code == 0
        assert len(read_predictions(out)) == 7
        files.append(str(out))
    report = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "bench",
            "score",
            str(closed),
            "--predictions",
            *files,
            "--out",
            str(report),
            "--resamples",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["model"] == "baseline:random"
    assert {r["model"] for r in metrics["leaderboard"]} == {
        "baseline:random",
        "baseline:refuse",
        "baseline:prior",
    }
    assert "report.md" in result.output and (report / "plots" / "trap_vs_refusal.png").exists()
    tsv = tmp_path / "bench.tsv"
    result = runner.invoke(
        app, ["bench", "export", str(closed), "--format", "vlmevalkit", "--out", str(tsv)]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tsv, sep="\t")) == 7


def test_circular_run_scores_circular_accuracy(small_bench: Path, tmp_path: Path) -> None:  # noqa: F811
    closed = small_bench / "closed.json"
    out = tmp_path / "c.jsonl"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["bench", "run", str(closed), "--model", "baseline:prior", "--out", str(out), "--circular"],
    )
    assert result.exit_code == 0, result.output
    rows = read_predictions(out)
    # 6 questions with 4 non-refusal options, one with 2: 6 * 4 + 2 rotations
    assert len(rows) == 26 and {r["rotation"] for r in rows} == {0, 1, 2, 3}
    result = runner.invoke(
        app,
        [
            "bench",
            "score",
            str(closed),
            "--predictions",
            str(out),
            "--out",
            str(tmp_path / "r"),
            "--resamples",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    # The prior answers by text, so it keeps its answer under rotation: traps it refuses on
    # modality (1_q2) stay right; a letter-only fallback would not.
    assert metrics["circular_accuracy"] <= metrics["accuracy"]
    assert metrics["circular_accuracy"] > 0


@pytest.mark.slow
def test_bad_inputs_are_one_line(tmp_path: Path, small_bench: Path) -> None:  # noqa: F811
    result = _run(
        "bench",
        "run",
        tmp_path / "none.json",
        "--model",
        "baseline:random",
        "--out",
        tmp_path / "p.jsonl",
    )
    assert result.returncode == 2 and "benchmark file not found" in result.stderr
    result = _run(
        "bench",
        "run",
        small_bench / "closed.json",
        "--model",
        "nope:x",
        "--out",
        tmp_path / "p.jsonl",
    )
    assert result.returncode == 2 and "unknown model spec" in result.stderr
    assert "Traceback" not in result.stderr
    runner = CliRunner()
    with pytest.raises(ConfigError, match="--predictions"):
        runner.invoke(
            app,
            ["bench", "score", str(small_bench / "closed.json"), "--out", str(tmp_path / "r")],
            catch_exceptions=False,
        )
    with pytest.raises(ConfigError, match="vlmevalkit"):
        runner.invoke(
            app,
            [
                "bench",
                "export",
                str(small_bench / "closed.json"),
                "--format",
                "csv",
                "--out",
                str(tmp_path / "x.tsv"),
            ],
            catch_exceptions=False,
        )
