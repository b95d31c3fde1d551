"""`neuroonco review --db DB`: the review queue, and recording a person's decisions.

Without ``--decide`` or ``--interactive`` it prints the queue (lowest agreement first).
``--decide SLICE FIELD accept|edit=VALUE|reject --reviewer NAME`` records one decision;
``--interactive`` walks the queue and asks for each disputed field. ``--export-label-studio DIR``
writes the queue as Label Studio tasks and its labeling config; ``--import-label-studio FILE``
records the annotations of a Label Studio JSON export. ``--resume`` lists, asks for or applies
(``--decisions FILE``) the decisions on slices an ``annotate --review`` run paused
(:mod:`neuroonco.commands.review_resume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuroonco import store
from neuroonco.errors import NeuroOncoError


def parse_decision(text: str) -> tuple[str, str | None]:
    """``accept`` / ``reject`` / ``edit=VALUE`` -> (decision, value)."""
    text = text.strip()
    if text in ("accept", "reject"):
        return text, None
    if text.startswith("edit="):
        return "edit", text[len("edit=") :]
    raise NeuroOncoError(f"decision {text!r} not understood; use accept, edit=VALUE or reject")


def review_command(
    db: Annotated[Path, typer.Option("--db", help="The NeuroOnco SQLite store.")],
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: the latest).")] = None,
    field: Annotated[
        str | None, typer.Option("--field", help="Query: slices whose votes on FIELD disagree.")
    ] = None,
    below: Annotated[
        float, typer.Option("--below", help="With --field: agreement below this share.")
    ] = 1.0,
    disagrees: Annotated[
        str | None,
        typer.Option(
            "--disagrees",
            help="Query: slices where describer SLOT ('0:spec') contradicts the measurement.",
        ),
    ] = None,
    include_reviewed: Annotated[
        bool, typer.Option("--include-reviewed", help="Keep slices already reviewed.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.")] = 50,
    decide: Annotated[
        tuple[str, str, str] | None,
        typer.Option("--decide", help="SLICE FIELD accept|edit=VALUE|reject"),
    ] = None,
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who decides.")] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", help="Ask for each disputed field of the queue.")
    ] = False,
    export_label_studio: Annotated[
        Path | None,
        typer.Option("--export-label-studio", help="Write the queue as Label Studio tasks here."),
    ] = None,
    image_root: Annotated[
        str | None,
        typer.Option(
            "--image-url-prefix",
            help="With --export-label-studio: URL prefix a web server of yours serves the "
            "exported images/ folder under (default: images embedded in the tasks).",
        ),
    ] = None,
    local_files_root: Annotated[
        Path | None,
        typer.Option(
            "--local-files-root",
            help="With --export-label-studio: the Label Studio server's "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (above the export folder); the tasks then use "
            "its /data/local-files/ URLs.",
        ),
    ] = None,
    import_label_studio: Annotated[
        Path | None,
        typer.Option("--import-label-studio", help="Record a Label Studio JSON export."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="The slices `annotate --review` paused: list them, or decide and resume them "
            "(at a terminal, with --interactive, or from --decisions).",
        ),
    ] = False,
    decisions: Annotated[
        Path | None,
        typer.Option(
            "--decisions",
            help="With --resume: JSONL of {slice_id, decision|fields, reviewer?} to resume with.",
        ),
    ] = None,
) -> None:
    """Show the queue of slices to review, or record decisions on them."""
    from neuroonco.review import gold
    from neuroonco.review.queue import build_queue
    from neuroonco.review.votes import latest_run

    if not db.exists():
        raise NeuroOncoError(f"no store at {db}; check --db (create one with `neuroonco annotate`)")
    if resume or decisions is not None:
        from neuroonco.commands.review_resume import resume_command

        resume_command(db, decisions=decisions, reviewer=reviewer, interactive=interactive)
        return
    database = store.connect(db)
    run_id = run or latest_run(database)
    if import_label_studio is not None:
        from neuroonco.review.label_studio import import_export

        rows = import_export(database, import_label_studio, run_id=run_id, reviewer=reviewer)
        typer.echo(f"Recorded {len(rows)} decisions from {import_label_studio}")
        return
    if decide is not None:
        if not reviewer:
            raise NeuroOncoError("--decide needs --reviewer NAME")
        slice_id, name, text = decide
        decision, value = parse_decision(text)
        row = gold.record(
            database,
            slice_id,
            name,
            decision,
            reviewer=reviewer,
            value=value,
            run_id=run_id,
            source="cli",
        )
        typer.echo(f"{slice_id} {name}: {decision} {row['value'] or ''}".rstrip())
        return
    items = build_queue(
        database,
        run_id,
        field_name=field,
        below=below,
        disagrees=disagrees,
        include_reviewed=include_reviewed,
    )
    if export_label_studio is not None:
        from neuroonco.review.label_studio import export_queue

        tasks, config = export_queue(
            database,
            items,
            export_label_studio,
            url_prefix=image_root,
            local_files_root=local_files_root,
            run_id=run_id,
        )
        typer.echo(f"Wrote {len(items)} tasks to {tasks} and the labeling config to {config}")
        return
    typer.echo(f"Review queue of run {run_id}: {len(items)} slices")
    for item in items[:limit]:
        typer.echo(
            f"{item.slice_id}  agreement={item.agreement:.2f}  status={item.status}  "
            f"disputed={','.join(item.disputed) or '-'}"
        )
    if not interactive:
        return
    if not reviewer:
        raise NeuroOncoError("--interactive needs --reviewer NAME")
    _interactive(database, items[:limit], run_id, reviewer)


def _interactive(database, items, run_id: str, reviewer: str) -> None:  # type: ignore[no-untyped-def]
    """One prompt per disputed field: a(ccept), r(eject), e VALUE (edit), s(kip), q(uit)."""
    from neuroonco.review import gold

    for item in items:
        for name in item.disputed or list(item.by_field) or ["lesion_found"]:
            votes = ", ".join(f"{r}={v[name]}" for r, v in item.votes.items())
            while True:
                answer = typer.prompt(
                    f"{item.slice_id} {name} [consensus={item.consensus.get(name)}; {votes}] "
                    "a/r/e VALUE/s/q",
                    default="s",
                ).strip()
                if answer == "q":
                    return
                if answer == "s":
                    break
                decision = {"a": "accept", "r": "reject"}.get(answer)
                value = None
                if decision is None and answer.startswith("e "):
                    decision, value = "edit", answer[2:]
                if decision is None:
                    typer.echo("answer a, r, e VALUE, s or q")
                    continue
                try:
                    gold.record(
                        database,
                        item.slice_id,
                        name,
                        decision,
                        reviewer=reviewer,
                        value=value,
                        run_id=run_id,
                        source="cli",
                    )
                except NeuroOncoError as exc:
                    typer.echo(f"not recorded: {exc}")
                    continue
                break
