"""`neuroonco bench audit BENCH.json --out DIR [--fix] [--train DIR]`: which questions are sound.

Writes DIR/audit.json (the format `bench score --audit` reads) and DIR/audit.md; with ``--fix``
also a cleaned copy DIR/<name>.fixed.json and DIR/fix_changes.json. The lead registers
:func:`audit_command` in the `bench` group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

BenchArg = Annotated[
    Path, typer.Argument(help="A benchmark file in the official format (closed or open).")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for audit.json and audit.md.")]
FixOpt = Annotated[
    bool,
    typer.Option("--fix", help="Also write a cleaned copy and the list of changes to --out."),
]
TrainOpt = Annotated[
    Path | None,
    typer.Option(
        "--train",
        help="A training export (llamafactory layout): report benchmark images it contains.",
    ),
]


def audit_command(
    bench: BenchArg, out: OutOpt, fix: FixOpt = False, train: TrainOpt = None
) -> None:
    """Audit a benchmark file: traps still answerable, options spelling one concept, answers of
    the wrong type, duplicate questions, images seen in training."""
    from neuroonco.benchmark.audit import audit_bench, fix_bench, read_bench, render_markdown

    records = read_bench(bench)
    report = audit_bench(records, train_dir=train, images_root=bench.parent)
    out.mkdir(parents=True, exist_ok=True)
    changes = None
    if fix:
        fixed, changes = fix_bench(records, report)
        fixed_path = out / f"{bench.stem}.fixed.json"
        fixed_path.write_text(
            json.dumps(fixed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (out / "fix_changes.json").write_text(
            json.dumps(changes, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        report.notes.append(
            f"cleaned copy: {fixed_path.name} (image paths stay relative to {bench.parent})"
        )
    # UTF-8 whatever the locale: option texts carry "–" and "≤".
    (out / "audit.json").write_text(
        json.dumps(report.to_json(str(bench)), indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (out / "audit.md").write_text(render_markdown(report, str(bench), changes), encoding="utf-8")
    console = Console()
    table = Table(title=f"audit: {report.n_questions} questions, {len(report.unsound)} unsound")
    table.add_column("finding")
    table.add_column("questions", justify="right")
    for kind, n in report.counts.items():
        table.add_row(kind, str(n))
    console.print(table)
    console.print(f"wrote {out / 'audit.json'} and {out / 'audit.md'}")
    if changes is not None:
        console.print(f"--fix: {len(changes)} changes, cleaned copy in {out}")
