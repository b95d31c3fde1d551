"""Base vs fine-tuned on one benchmark file: both run, both scored, side by side with intervals.

`compare_models` runs `bench run` for the two specs on the same file (resuming what is already in
OUT/base.jsonl and OUT/tuned.jsonl), scores both with `bench score` (no baselines), and builds
one table: each metric with its bootstrap 95% interval for either model (bench's own intervals)
and the difference with a paired bootstrap interval over the same questions, so a gain is read
against the noise of a small benchmark. Writes OUT/compare.json and OUT/compare.md; the bench
report of both models is under OUT/score/. Torch-free itself (the models may not be).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError

CLOSED = ("accuracy", "answerable_accuracy", "trap_recall", "over_refusal", "parse_failure_rate")
OPEN = ("keyword_recall", "token_f1", "rouge_l")
# Per-question values behind each metric, for the paired difference: (results field, subset).
PAIRED = {
    "accuracy": ("correct", None),
    "answerable_accuracy": ("correct", "answerable"),
    "trap_recall": ("refused", "trap"),
    "over_refusal": ("refused", "answerable"),
    "keyword_recall": ("keyword_recall", None),
    "token_f1": ("token_f1", None),
    "rouge_l": ("rouge_l", None),
}


@dataclass
class Row:
    metric: str
    base: float | None
    base_ci: list[float] | None
    tuned: float | None
    tuned_ci: list[float] | None
    delta: float | None
    delta_ci: list[float] | None


def _per_question(path: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {r["question_id"]: r for r in rows}


def paired_delta_ci(
    base: dict[str, dict], tuned: dict[str, dict], metric: str, resamples: int, seed: int
) -> tuple[float | None, list[float] | None]:
    """tuned - base on the questions both answered, with a paired percentile bootstrap."""
    import numpy as np

    field, subset = PAIRED[metric]
    pairs = []
    for qid, b in base.items():
        t = tuned.get(qid)
        if t is None or b.get(field) is None or t.get(field) is None:
            continue
        if subset == "trap" and not b.get("trap"):
            continue
        if subset == "answerable" and b.get("trap"):
            continue
        pairs.append((float(t[field]), float(b[field])))
    if not pairs:
        return None, None
    diffs = np.array([t - b for t, b in pairs])
    delta = float(diffs.mean())
    if resamples <= 0:
        return delta, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diffs.size, size=(resamples, diffs.size))
    means = diffs[idx].mean(axis=1)
    return delta, [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def compare_table(metrics: dict[str, Any], score_dir: Path, resamples: int, seed: int) -> list[Row]:
    """Rows of the comparison from `bench score` output of exactly two models (base first)."""
    from neuroonco.benchmark.score import slug

    names = [name for name, entry in metrics["models"].items() if not entry["baseline"]]
    if len(names) != 2:
        raise ConfigError(f"expected two scored models, got {names}")
    base, tuned = (metrics["models"][n]["all"] for n in names)
    results = [_per_question(score_dir / "results" / f"{slug(n)}.jsonl") for n in names]
    keys = CLOSED if metrics["kind"] == "closed" else OPEN
    rows = []
    for key in keys:
        delta, delta_ci = (None, None)
        if key in PAIRED:
            delta, delta_ci = paired_delta_ci(*results, key, resamples, seed)
        elif base.get(key) is not None and tuned.get(key) is not None:
            delta = tuned[key] - base[key]
        rows.append(
            Row(
                key,
                base.get(key),
                base.get(key + "_ci"),
                tuned.get(key),
                tuned.get(key + "_ci"),
                delta,
                delta_ci,
            )
        )
    return rows


def _pct(value: float | None, ci: list[float] | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    if ci:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def markdown(rows: list[Row], base: str, tuned: str, bench: str, n: int) -> str:
    lines = [
        f"# {bench}: base vs fine-tuned ({n} questions)",
        "",
        f"- base: `{base}`",
        f"- fine-tuned: `{tuned}`",
        "",
        "Percent, with bootstrap 95% intervals; the difference is paired over the same questions.",
        "",
        "| metric | base | fine-tuned | difference |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.metric} | {_pct(r.base, r.base_ci)} | {_pct(r.tuned, r.tuned_ci)} | "
            f"{_pct(r.delta, r.delta_ci, signed=True)} |"
        )
    return "\n".join(lines) + "\n"


def compare_models(
    bench_path: Path,
    base_spec: str,
    tuned_spec: str,
    out: Path,
    *,
    limit: int | None = None,
    max_tokens: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    on_progress: Any = None,
) -> tuple[list[Row], dict[str, Any]]:
    """Run, score and compare; returns the rows and the full `bench score` metrics."""
    from neuroonco.benchmark.files import load_bench
    from neuroonco.benchmark.runner import RunOptions, run_bench
    from neuroonco.benchmark.score import ScoreOptions, score_bench

    if base_spec.strip() == tuned_spec.strip():
        raise ConfigError("--base and --tuned name the same model: nothing to compare")
    bench = load_bench(bench_path)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, spec in (("base", base_spec), ("tuned", tuned_spec)):
        options = RunOptions(images_root=bench_path.parent, limit=limit, use_cache=False)
        if max_tokens:
            options.max_tokens_closed = options.max_tokens_open = max_tokens
        path = out / f"{label}.jsonl"
        summary = run_bench(bench, spec, path, options)
        if on_progress is not None:
            on_progress(label, spec, summary)
        paths.append(path)
    score_dir = out / "score"
    metrics = score_bench(
        bench, paths, score_dir, ScoreOptions(resamples=resamples, seed=seed, baselines=False)
    )
    rows = compare_table(metrics, score_dir, resamples, seed)
    report = {
        "bench": str(bench_path),
        "base": base_spec,
        "tuned": tuned_spec,
        "n": metrics["n"],
        "rows": [r.__dict__ for r in rows],
    }
    (out / "compare.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = markdown(rows, base_spec, tuned_spec, bench_path.name, metrics["n"])
    (out / "compare.md").write_text(text, encoding="utf-8")
    return rows, metrics
