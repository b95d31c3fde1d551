"""`neuroonco annotate [SRC...] --db DB`: the agent graph over every stored slice."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from neuroonco.agents.providers.base import ImagePart, ModelRequest, schema_fingerprint
from neuroonco.agents.providers.pricing import Prices, estimate_tokens, parse_price
from neuroonco.agents.requests import build_request
from neuroonco.commands.ingest import run_ingest
from neuroonco.errors import ConfigError
from neuroonco.graph.context import AnnotateConfig

if TYPE_CHECKING:  # the graph (langgraph) loads when a run starts, not with --help
    from neuroonco.graph.runner import Runner, RunSummary


def _specs(value: str | None) -> list[str] | None:
    return [s.strip() for s in value.split(",") if s.strip()] if value else None


def build_config(
    config_file: Path | None,
    describers: str | None,
    diagnostician: str | None,
    critic: str | None,
    arbiter: str | None,
    rule: str | None,
    max_rounds: int | None,
) -> AnnotateConfig:
    """The run's config: a file's values, then any option given on the command line."""
    config = AnnotateConfig.from_file(config_file) if config_file else AnnotateConfig()
    overrides = {
        "describers": _specs(describers),
        "diagnostician": diagnostician,
        "critic": critic,
        "arbiter": arbiter,
        "rule": rule,
        "max_rounds": max_rounds,
    }
    values = {**config.as_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    return AnnotateConfig(**values)


def sample_requests(
    config: AnnotateConfig, row: dict[str, Any] | None, base: Path
) -> dict[str, ModelRequest]:
    """Role -> the request that role sends for ``row`` (a real pending slice: its images, its
    grounding), with builtin answers standing in for the other agents' outputs."""
    from neuroonco.agents.providers import builtin
    from neuroonco.graph.nodes import slice_grounding, slice_images

    images: tuple[ImagePart, ...] = ()
    grounding: dict[str, Any] = {"modality": None, "label": None, "measurements": None}
    if row is not None:
        grounding = slice_grounding(row, base)
        try:
            images = slice_images(row, base, config.group_images)
        except OSError:
            images = ()
    findings = builtin.describe(grounding).model_dump(mode="json")
    votes = [findings] * len(config.describers)
    diagnosis = builtin.diagnose({**grounding, "votes": votes}).model_dump(mode="json")
    return {
        "describer": build_request("describer", grounding, images),
        "diagnostician": build_request("diagnostician", {**grounding, "votes": votes}, images[:1]),
        "critic": build_request("critic", {**grounding, "findings": findings}),
        "arbiter": build_request(
            "arbiter",
            {**grounding, "votes": votes, "diagnosis": diagnosis, "rule": config.rule},
        ),
    }


def estimate_cost(
    config: AnnotateConfig,
    slices: int,
    prices: Prices | None = None,
    requests: dict[str, ModelRequest] | None = None,
) -> float | None:
    """Upper-bound USD for paid models (every round taken), None when nothing is priced.

    Tokens per call come from ``requests`` (:func:`sample_requests`: the real request size,
    images and answer schema included), one image only for a model set to ``multi_image`` false.
    """
    prices = prices or Prices()
    requests = requests or sample_requests(config, None, Path("."))
    rounds = config.max_rounds
    per_slice = [(s, "describer", rounds) for s in config.describers]
    per_slice += [
        (config.diagnostician, "diagnostician", 1),
        (config.critic, "critic", rounds * len(config.describers)),
        (config.arbiter, "arbiter", 1),
    ]
    total, priced = 0.0, False
    for spec, role, n in per_slice:
        request = requests[role]
        if config.model_options(spec).get("multi_image") is False:
            request = dataclasses.replace(request, images=request.images[:1])
        tokens = estimate_tokens(request, schema_fingerprint(request.response_model))
        unit = prices.cost(spec, *tokens)
        if unit:
            total += unit * n * slices
            priced = True
    return total if priced else None


def print_summary(summary: RunSummary, console: Console) -> None:
    t = summary.tally
    table = Table(title=f"annotate run {summary.run_id}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("slices annotated", str(summary.done))
    for status in sorted(summary.by_status):
        table.add_row(f"  {status}", str(summary.by_status[status]))
    if summary.paused:
        table.add_row("  paused for review", str(summary.paused))
    table.add_row("model calls (cached)", f"{t.calls} ({t.cached})")
    table.add_row("tokens in / out", f"{t.input_tokens} / {t.output_tokens}")
    table.add_row("cost", f"${t.cost_usd:.4f}")
    table.add_row("time", f"{summary.elapsed_s:.1f} s ({summary.slices_per_s:.1f} slices/s)")
    console.print(table)
    if summary.stopped:
        console.print(f"[yellow]stopped early: {summary.stopped}; run the same command to go on")


def annotate_command(
    sources: Annotated[
        list[Path] | None, typer.Argument(help="Source folders to ingest first (optional).")
    ] = None,
    db: Annotated[Path, typer.Option("--db", help="SQLite store.")] = Path("neuroonco.db"),
    describers: Annotated[
        str | None, typer.Option(help="Comma-separated describer specs, e.g. builtin,openai:gpt-4o")
    ] = None,
    diagnostician: Annotated[str | None, typer.Option(help="Diagnostician spec.")] = None,
    critic: Annotated[str | None, typer.Option(help="Critic spec.")] = None,
    arbiter: Annotated[str | None, typer.Option(help="Arbiter spec.")] = None,
    rule: Annotated[
        str | None, typer.Option(help="Fusion rule: unanimous, majority or seed_rules.")
    ] = None,
    max_rounds: Annotated[int | None, typer.Option(min=1, help="Critique rounds at most.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Model calls in flight.")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Annotate at most N slices.")] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop cleanly before spending more than this (USD).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON/TOML file of AnnotateConfig fields.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Skip the paid-run prompt.")] = False,
    price: Annotated[
        list[str] | None,
        typer.Option(
            "--price",
            help="SPEC=IN/OUT: USD per million input/output tokens of a model without a known "
            "price (repeatable); needed under --max-cost.",
        ),
    ] = None,
    review: Annotated[
        bool,
        typer.Option(
            "--review",
            help="Pause slices that need review for a person (checkpointed in "
            "DB-checkpoints.sqlite); resume them with `neuroonco review --db DB --resume`.",
        ),
    ] = False,
) -> None:
    """Annotate slices with the describer/diagnostician/critic/arbiter graph (ingests SRC first).

    Model specs: builtin (offline default), openai:MODEL, anthropic:MODEL, ollama:MODEL."""
    from neuroonco.graph.runner import Runner
    from neuroonco.ingest import IngestOptions

    console = Console()
    cfg = build_config(config, describers, diagnostician, critic, arbiter, rule, max_rounds)
    try:
        given = dict(parse_price(text) for text in price or ())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    runner = Runner(
        db,
        cfg,
        concurrency=concurrency,
        limit=limit,
        max_cost_usd=max_cost,
        prices=given,
        review=review,
    )
    # Every model is checked before anything is ingested or written.
    asyncio.run(runner.check())
    if sources:
        run_ingest(sources, db, IngestOptions(), console)
    _confirm_cost(runner, cfg, console, yes)
    with Progress(
        TextColumn("annotating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("annotate", total=None, stats="")

        def update(s: RunSummary) -> None:
            t = s.tally
            rate = s.done / max(1e-9, progress.tasks[0].elapsed or 1e-9)
            progress.update(
                task,
                total=s.pending,
                completed=s.done,
                stats=f"{rate:.1f} slices/s  calls {t.calls}  "
                f"tokens {t.input_tokens + t.output_tokens}  ${t.cost_usd:.4f}",
            )

        summary = asyncio.run(runner.run(update))
    print_summary(summary, console)
    if summary.paused:
        console.print(
            f"{summary.paused} slices await review: run `neuroonco review --db {db} --resume` "
            "(add --decisions FILE.jsonl to give the decisions from a file)"
        )


def _confirm_cost(runner: Runner, cfg: AnnotateConfig, console: Console, yes: bool) -> None:
    from neuroonco import store
    from neuroonco.graph.runner import pending_count, pending_slices

    conn = store.connect(runner.db_path)
    try:
        pending = pending_count(conn, cfg.config_hash())
        sample = next(pending_slices(conn, cfg.config_hash(), 1), None)
    finally:
        conn.close()
    if runner.limit:
        pending = min(pending, runner.limit)
    requests = sample_requests(cfg, sample, runner.db_path.parent)
    estimate = estimate_cost(cfg, pending, runner.prices, requests)
    if estimate is None:
        return
    console.print(
        f"{pending} slices to annotate with paid models: estimated at most ${estimate:.2f}"
        + (f" (budget ${runner.max_cost_usd:.2f})" if runner.max_cost_usd else "")
    )
    interactive = os.isatty(0) and not os.environ.get("CI")
    if interactive and not yes and not typer.confirm("Go on?", default=True):
        raise typer.Exit(1)
