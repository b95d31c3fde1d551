"""`neuroonco agreement --db DB [--run RUN]`: the describers' agreement per field, before critique.

Reads only the store (no model is called); writes the results to the ``review_agreement`` table
and a Markdown report with a PNG plot, and prints the report's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuroonco.errors import NeuroOncoError


def reports_dir(db_path: Path) -> Path:
    """Where reports of the store at ``db_path`` go by default: ``<db stem>_reports/``."""
    return db_path.parent / f"{db_path.stem}_reports"


def agreement_command(
    db: Annotated[Path, typer.Option("--db", help="The NeuroOnco SQLite store.")],
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
    votes: Annotated[
        str,
        typer.Option(
            "--votes",
            help="first: each describer's round-1 output (independent, the default); "
            "last: its latest round (after revising on the critique, before it is applied).",
        ),
    ] = "first",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the report (default: <db stem>_reports/)."),
    ] = None,
) -> None:
    """Per field: Krippendorff's alpha and Fleiss' kappa of the describers' own votes, accuracy
    against the measurements and the gold set, and the fusion rules replayed."""
    from neuroonco import store
    from neuroonco.review import agreement, gold, report
    from neuroonco.review.votes import latest_run, load_votes

    if votes not in ("first", "last"):
        raise NeuroOncoError(f"--votes must be first or last, not {votes!r}")
    if not db.exists():
        raise NeuroOncoError(f"no store at {db}; check --db (create one with `neuroonco annotate`)")
    database = store.connect(db)
    run_id = run or latest_run(database)
    run_votes = load_votes(database, run_id, votes)  # type: ignore[arg-type]
    result = agreement.compute(run_votes, gold.gold_values(database))
    report.save(database, result)
    path = report.write(result, out or reports_dir(db))
    for name in agreement.VOTED_FIELDS:
        a = result.get(name, "krippendorff_alpha")
        if a is not None:
            shown = "n/a" if a.value is None else f"{a.value:.3f}"
            typer.echo(f"{name:18s} alpha={shown:>6s}  items={a.n}")
    if len(run_votes.raters) < 2:
        # Say why every alpha is n/a rather than leave a table of blanks.
        typer.echo(
            f"run {run_id} has {len(run_votes.raters)} describer: agreement needs two or more "
            "(e.g. `neuroonco annotate SRC --describers builtin,ollama:qwen2.5vl:7b`)"
        )
    typer.echo(f"Agreement report: {path}")
