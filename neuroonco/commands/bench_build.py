"""`neuroonco bench build --db DB --out DIR`: our benchmark in the official v1.0 format.

Exposes :func:`build_command`; the `bench` command group registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def build_command(
    db: Annotated[Path, typer.Option("--db", help="SQLite store with annotations.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for closed.json, open.json, images/.")],
    run: Annotated[str | None, typer.Option(help="Run id (default: the latest run).")] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Also use annotations with this status: needs_review.")
    ] = None,
    keep_source_splits: Annotated[
        bool, typer.Option(help="Keep a source's own train/val/test split where it has one.")
    ] = False,
    seed: Annotated[
        int, typer.Option(help="Seed (the instruction set's, for the same split).")
    ] = 0,
    trap_rate: Annotated[
        float, typer.Option(help="Share of closed questions whose right option is removed.")
    ] = 0.19,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
) -> None:
    """Build closed.json and open.json (MM-NeuroOnco-Bench v1.0 format) from the test split."""
    from neuroonco.benchmark.build import BenchBuildOptions, build_bench

    counts = build_bench(
        BenchBuildOptions(
            db=db,
            out=out,
            run=run,
            include=tuple(include or ()),
            keep_source_splits=keep_source_splits,
            seed=seed,
            trap_rate=trap_rate,
            force=force,
        )
    )
    Console().print(
        f"benchmark in {out}: {counts['records']} images, {counts['closed_questions']} closed "
        f"questions ({counts['traps']} traps), {counts['open_questions']} open questions"
    )
