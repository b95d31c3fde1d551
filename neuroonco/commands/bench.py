"""`neuroonco bench run | score | export`: run any model on a benchmark file, score it, export it.

`bench build` (neuroonco/commands/bench_build.py) and `bench audit` (bench_audit.py) are written
by other branches; they join this group wherever their modules are present.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from neuroonco.errors import ConfigError

app = typer.Typer(
    name="bench",
    help="Run a model on a benchmark file (ours or the official MM-NeuroOnco-Bench); score.",
    no_args_is_help=True,
)


@app.command("run")
def run_command(
    bench: Annotated[Path, typer.Argument(help="closed.json or open.json (official v1.0 format)")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="openai:M, anthropic:M, ollama:M, baseline:random|refuse|prior, transformers:PATH",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="predictions JSONL (appended, resumable)")],
    images_root: Annotated[
        Path | None,
        typer.Option(
            "--images-root", help="folder the records' image_path are under [default: the file's]"
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="questions in flight at once")] = 8,
    circular: Annotated[
        bool, typer.Option("--circular", help="also ask every CircularEval rotation of the options")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N questions")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="answer length limit [default: 256 closed, 512 open]")
    ] = None,
    timeout: Annotated[float, typer.Option(min=1, help="seconds per model call")] = 120.0,
    cache: Annotated[
        Path | None, typer.Option(help="answer cache file [default: beside --out]")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="ask even if cached")] = False,
    seed: Annotated[int, typer.Option(help="seed of baseline:random")] = 0,
    batch_size: Annotated[
        int,
        typer.Option(min=1, help="questions per call for local models that batch (transformers:)"),
    ] = 8,
) -> None:
    """Ask one model every question; one JSON line per question as it finishes."""
    from neuroonco.benchmark.files import load_bench
    from neuroonco.benchmark.runner import RunOptions, RunSummary, run_bench

    loaded = load_bench(bench)
    options = RunOptions(
        images_root=images_root or bench.parent,
        concurrency=concurrency,
        circular=circular,
        limit=limit,
        timeout_s=timeout,
        cache_path=cache,
        use_cache=not no_cache,
        seed=seed,
        batch_size=batch_size,
    )
    if max_tokens:
        options.max_tokens_closed = options.max_tokens_open = max_tokens
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"{model}", total=None)

        def started(summary: RunSummary) -> None:
            progress.update(task, total=summary.total, completed=summary.skipped)

        summary = run_bench(
            loaded,
            model,
            out,
            options,
            on_row=lambda _row: progress.advance(task),
            on_start=started,
        )
    cost = f", ${summary.cost_usd:.4f}" if summary.cost_usd else ""
    console.print(
        f"{summary.answered} answered ({summary.calls} model calls, {summary.cached} cached), "
        f"{summary.skipped} already done, {summary.errors} errors in {summary.elapsed_s:.1f} s"
        f"{cost} -> {out}"
    )
    for example in summary.error_examples:
        console.print(f"  error {example}", style="yellow")


@app.command("score")
def score_command(
    bench: Annotated[Path, typer.Argument(help="the benchmark file the predictions answer")],
    more: Annotated[
        list[Path] | None,
        typer.Argument(help="more predictions files (after --predictions)", show_default=False),
    ] = None,
    predictions: Annotated[
        list[Path] | None,
        typer.Option("--predictions", help="predictions JSONL (several: a leaderboard)"),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="report folder")] = Path("bench-report"),
    audit: Annotated[
        Path | None,
        typer.Option(help="audit.json from `bench audit`: metrics also on the sound questions"),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="model spec reading responses the rules cannot (reported separately)"),
    ] = None,
    rubric_judge: Annotated[
        str | None, typer.Option(help="model spec grading open answers against the reference, 0-5")
    ] = None,
    resamples: Annotated[int, typer.Option(min=0, help="bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap and baseline seed")] = 0,
    baselines: Annotated[bool, typer.Option(help="score the baselines beside the models")] = True,
) -> None:
    """Score predictions: metrics.json, per-question results, report.md and plots."""
    from neuroonco.benchmark.files import load_bench
    from neuroonco.benchmark.score import ScoreOptions, score_bench

    paths = list(predictions or []) + list(more or [])
    if not paths:
        raise ConfigError("give the predictions to score: --predictions PRED.jsonl [MORE.jsonl]")
    loaded = load_bench(bench)
    options = ScoreOptions(
        resamples=resamples,
        seed=seed,
        judge=judge,
        rubric_judge=rubric_judge,
        audit=audit,
        baselines=baselines,
    )
    metrics = score_bench(loaded, paths, out, options)
    console = Console()
    closed = loaded.kind == "closed"
    keys = (
        ("accuracy", "trap_recall", "over_refusal", "balanced_accuracy", "parse_failure_rate")
        if closed
        else ("keyword_recall", "keyword_recall_unleaked", "token_f1", "rouge_l")
    )
    short = {
        "accuracy": "acc.",
        "trap_recall": "trap rec.",
        "over_refusal": "over-ref.",
        "balanced_accuracy": "bal. acc.",
        "parse_failure_rate": "unread",
        "keyword_recall": "kw recall",
        "keyword_recall_unleaked": "kw unleaked",
        "token_f1": "token F1",
        "rouge_l": "ROUGE-L",
    }
    table = Table(title=f"{loaded.path.name}: {metrics['n']} questions (%)")
    table.add_column("model", no_wrap=True)
    for key in keys:
        table.add_column(short[key], justify="right", no_wrap=True)
    for row in metrics["leaderboard"]:
        values = [("-" if row.get(k) is None else f"{100 * row[k]:.1f}") for k in keys]
        table.add_row(row["model"] + (" (baseline)" if row["baseline"] else ""), *values)
    console.print(table)
    if "audit" in metrics:
        a = metrics["audit"]
        console.print(
            f"audit: {a['excluded']} unsound questions excluded from the sound metrics "
            f"({', '.join(f'{k} {v}' for k, v in a['by_kind'].items()) or 'none'})"
        )
    console.print(f"report: {out / 'report.md'}  metrics: {out / 'metrics.json'}")


@app.command("export")
def export_command(
    bench: Annotated[Path, typer.Argument(help="closed benchmark file")],
    out: Annotated[Path, typer.Option("--out", help="output file (.tsv)")],
    fmt: Annotated[str, typer.Option("--format", help="vlmevalkit")] = "vlmevalkit",
    images_root: Annotated[
        Path | None,
        typer.Option(
            "--images-root", help="folder the image paths are under [default: the file's]"
        ),
    ] = None,
) -> None:
    """Export a closed benchmark for another evaluation tool (VLMEvalKit's custom MCQ TSV)."""
    from neuroonco.benchmark.files import load_bench

    if fmt.lower() != "vlmevalkit":
        raise ConfigError(f"unknown export format {fmt!r}: use --format vlmevalkit")
    from neuroonco.benchmark.vlmevalkit import export_vlmevalkit

    rows = export_vlmevalkit(load_bench(bench), images_root or bench.parent, out)
    Console().print(
        f"{rows} questions -> {out} (VLMEvalKit: put it in $LMUData, run --data {out.stem})"
    )


def _register_siblings() -> None:
    """`bench build` and `bench audit`, from their own modules when this install has them."""
    for name, module, function in (
        ("build", "neuroonco.commands.bench_build", "build_command"),
        ("audit", "neuroonco.commands.bench_audit", "audit_command"),
    ):
        # find_spec, not a guarded import: a module that exists but fails must fail loudly.
        if importlib.util.find_spec(module) is not None:
            app.command(name)(getattr(importlib.import_module(module), function))


_register_siblings()
