"""The fine-tuned tiny model on a benchmark: `bench run` -> `bench score`, and the comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from neuroonco.benchmark.score import slug
from neuroonco.cli import app
from neuroonco.tools.phantom import make_slice_phantom

NOTA = "None of the above"
DIAGNOSES = ("glioma", "meningioma", "metastasis", "schwannoma")


def write_closed_bench(root: Path, n: int = 4) -> Path:
    """An official-format closed.json over phantom slices: a diagnosis question and a trap each."""
    records = []
    for i in range(n):
        diagnosis = DIAGNOSES[i % len(DIAGNOSES)]
        rel = f"{diagnosis}/{i}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pixels, _ = make_slice_phantom(56, seed=100 + i)
        Image.fromarray(pixels).save(root / rel)
        options = dict(zip("ABCD", DIAGNOSES, strict=True)) | {"E": NOTA}
        sequences = {"A": "T1", "B": "T2", "C": "DWI", "D": "FLAIR", "E": NOTA}
        records.append(
            {
                "id": i + 1,
                "image_path": rel,
                "vqa_pairs": [
                    {
                        "question_type": "diagnosis",
                        "question": "What is the most likely diagnosis?",
                        "options": options,
                        "answer": "ABCD"[i % 4],
                    },
                    {
                        "question_type": "modality",
                        "question": "What MRI sequence is shown?",
                        "options": sequences,
                        "answer": "E",
                        "meta_trap": True,
                        "meta_original_answer": "T1_CE",
                    },
                ],
            }
        )
    path = root / "closed.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", *args],
        capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_bench_run_with_the_adapter_is_scored_by_bench_score(trained, tmp_path):
    out, _ = trained
    bench = write_closed_bench(tmp_path / "bench")
    spec = f"transformers:tiny?adapter={out / 'adapter'}&max_new_tokens=8"
    predictions = tmp_path / "pred.jsonl"
    run = _cli("bench", "run", str(bench), "--model", spec, "--out", str(predictions))
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 8 and all(not r.get("error") for r in rows)
    assert {r["question_id"] for r in rows} == {f"{i}_q{k}" for i in range(1, 5) for k in (1, 2)}
    report = tmp_path / "report"
    score = CliRunner().invoke(
        app, ["bench", "score", str(bench), "--predictions", str(predictions), "--out", str(report)]
    )
    assert score.exit_code == 0, score.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["model"].startswith("transformers:tiny")
    mine = report / "results" / f"{slug(metrics['model'])}.jsonl"
    results = [json.loads(line) for line in mine.open()]
    assert len(results) == 8
    assert metrics["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 8)
    # The adapter learnt to answer diagnoses by name (the export's answers), which bench reads
    # as the option of that name; the trap about the sequence it cannot parse.
    diagnosis = [r for r in results if r["question_type"] == "diagnosis"]
    assert all(r["status"] not in ("error", "missing") for r in results)
    assert 0.0 <= metrics["parse_failure_rate"] < 1.0 and diagnosis


def test_compare_prints_base_and_tuned_side_by_side_with_intervals(trained, tmp_path):
    out, _ = trained
    bench = write_closed_bench(tmp_path / "bench")
    base = "transformers:tiny?max_new_tokens=6"
    tuned = f"transformers:tiny?adapter={out / 'adapter'}&max_new_tokens=6"
    result = CliRunner().invoke(
        app,
        ["finetune-compare", str(bench), "--base", base, "--tuned", tuned,
         "--out", str(tmp_path / "cmp"), "--resamples", "200"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "base vs fine-tuned" in result.output and "accuracy" in result.output
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["metric"]: r for r in report["rows"]}
    assert report["n"] == 8 and set(rows) >= {"accuracy", "trap_recall", "parse_failure_rate"}
    accuracy = rows["accuracy"]
    assert accuracy["base_ci"] is not None and accuracy["tuned_ci"] is not None
    assert accuracy["delta"] == pytest.approx(accuracy["tuned"] - accuracy["base"])
    assert accuracy["delta_ci"][0] <= accuracy["delta"] <= accuracy["delta_ci"][1]
    assert "| accuracy |" in (tmp_path / "cmp" / "compare.md").read_text()
