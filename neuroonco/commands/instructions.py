"""`neuroonco instructions --db DB --out DIR --format FORMAT ...`: the instruction-tuning set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def print_summary(stats: dict[str, Any], out: Path, console: Console) -> None:
    table = Table(title=f"instructions from run {stats['run_id']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("slices / subjects", f"{stats['n_slices']} / {stats['n_subjects']}")
    table.add_row("instructions", str(stats["n_instructions"]))
    for kind, n in stats["by_kind"].items():
        table.add_row(f"  {kind}", str(n))
    for split, n in stats["by_split"].items():
        table.add_row(f"  {split}", str(n))
    table.add_row("traps", f"{stats['traps']} ({stats['trap_share_of_closed']:.1%} of closed)")
    table.add_row("AIR (field fill rate)", f"{stats['air']:.1%}")
    console.print(table)
    console.print(f"written to {out} ({', '.join(stats['formats'])}; stats.json, summary.md)")


def instructions_command(
    db: Annotated[Path, typer.Option("--db", help="SQLite store with annotations.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (refused if it exists).")],
    format: Annotated[
        list[str] | None,
        typer.Option("--format", help="llamafactory, llava, openai or hf; repeat for several."),
    ] = None,
    run: Annotated[str | None, typer.Option(help="Run id (default: the latest run).")] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Also use annotations with this status: needs_review.")
    ] = None,
    keep_source_splits: Annotated[
        bool, typer.Option(help="Keep a source's own train/val/test split where it has one.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for splits, option order and traps.")] = 0,
    trap_rate: Annotated[
        float, typer.Option(help="Share of closed questions whose right option is removed.")
    ] = 0.19,
    cot_rate: Annotated[
        float, typer.Option(help="Share of closed questions answered with an explanation.")
    ] = 0.5,
    paraphrase: Annotated[
        str | None,
        typer.Option(help="Model spec that paraphrases open answers (checked; else template)."),
    ] = None,
) -> None:
    """Generate closed and open instructions from the consensus, split by subject, and export
    them for fine-tuning tools."""
    from neuroonco.finetune.instructions import InstructionOptions, build_instructions

    console = Console()
    opts = InstructionOptions(
        db=db,
        out=out,
        formats=list(format or ["llamafactory"]),
        run=run,
        include=list(include or []),
        keep_source_splits=keep_source_splits,
        force=force,
        seed=seed,
        trap_rate=trap_rate,
        cot_rate=cot_rate,
        paraphrase=paraphrase,
    )
    paraphraser = None
    if paraphrase:
        from neuroonco.finetune.paraphrase import Paraphraser

        paraphraser = Paraphraser(paraphrase)
    with Progress(
        TextColumn("instructions"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("instructions", total=None)

        def update(done: int, total: int) -> None:
            if done % 256 == 0 or done == total:
                progress.update(task, completed=done, total=total)

        try:
            stats = build_instructions(opts, on_slice=update, paraphraser=paraphraser)
        finally:
            if paraphraser is not None:
                paraphraser.close()
    print_summary(stats, out, console)
