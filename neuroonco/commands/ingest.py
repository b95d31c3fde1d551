"""`neuroonco ingest SRC... --db DB`: source trees into measured, de-duplicated slices."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # the ingest machinery loads with the command, not with --help
    from neuroonco.ingest import IngestOptions, IngestSummary


SourcesArg = Annotated[
    list[Path], typer.Argument(help="Source folders in any supported public layout.")
]
DbOpt = Annotated[Path, typer.Option("--db", help="SQLite store to create or extend.")]
PerVolumeOpt = Annotated[
    int, typer.Option("--per-volume", min=1, help="Axial slices per 3D case, across the tumour.")
]
NegativesOpt = Annotated[
    int, typer.Option("--negatives", min=0, help="Tumour-free slices per 3D case to add.")
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Cases processed at once (default: one per core, at most 4)."
    ),
]


def run_ingest(
    sources: list[Path], db: Path, options: IngestOptions, console: Console
) -> IngestSummary:
    """Ingest with a live progress line; shared by `ingest` and `annotate SRC`."""
    from neuroonco.ingest import ingest

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting")

        def update(s: IngestSummary) -> None:
            progress.update(
                task,
                description=f"ingesting: {s.cases} cases, {s.slices} slices, "
                f"{s.duplicates} duplicates, {s.rejected} rejected",
            )

        summary = ingest(sources, db, options, on_case=update)
    print_summary(summary, console)
    return summary


def print_summary(summary: IngestSummary, console: Console) -> None:
    table = Table(title="ingest", show_header=True)
    for col in ("cases", "slices", "duplicates", "unchanged cases skipped", "rejected files"):
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.cases),
        str(summary.slices),
        str(summary.duplicates),
        str(summary.skipped_cases),
        str(summary.rejected),
    )
    console.print(table)
    if summary.by_format:
        formats = ", ".join(f"{k}: {v}" for k, v in sorted(summary.by_format.items()))
        console.print(f"slices by layout: {formats}")


def ingest_command(
    sources: SourcesArg,
    db: DbOpt,
    per_volume: PerVolumeOpt = 1,
    negatives: NegativesOpt = 0,
    workers: WorkersOpt = None,
) -> None:
    """Ingest source folders (BraTS, figshare .mat, class folders, image/mask pairs, YOLO,
    DICOM, NIfTI) into the store: slices, masks, measurements, provenance, duplicates."""
    from neuroonco.ingest import IngestOptions, default_workers

    options = IngestOptions(
        per_volume=per_volume, negatives=negatives, workers=workers or default_workers()
    )
    run_ingest(sources, db, options, Console(stderr=False))
