"""`neuroonco review --db DB --resume`: the slices an `annotate --review` run paused, resumed with
a person's decisions, typed at a prompt or read from a file.

``--decisions FILE``: JSON lines (or one JSON list), one object per slice::

    {"slice_id": "ab12...", "decision": "accept"}
    {"slice_id": "cd34...", "decision": "reject", "note": "motion artefact"}
    {"slice_id": "ef56...", "fields": {"size": "edit=large", "margins": "reject"}}

``reviewer`` may be given per line, else ``--reviewer``. Every line is checked (vocabulary,
slice paused) before any slice is resumed, so a bad file changes nothing; a slice already
resumed is skipped, so the same file can be given again. Without a file the paused slices are
listed, or, at a terminal or with ``--interactive``, asked one by one.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import typer

from neuroonco import store
from neuroonco.errors import NeuroOncoError
from neuroonco.graph.resume import PausedSlice, find_paused, resume_slices, resumed_by_interrupt
from neuroonco.graph.review import check_decision
from neuroonco.review.gold import REVIEW_FIELDS

PROMPT = "decide: a (accept), r (reject slice), FIELD=VALUE / FIELD=reject ..., s (skip), q (quit)"


def read_decisions(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of a JSONL file or a JSON list; a one-line error naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NeuroOncoError(f"cannot read the decisions file {path}: {exc}") from None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as exc:
            raise NeuroOncoError(f"{path} is not valid JSON: {exc}") from None
        entries = list(enumerate(items, start=1))
    else:
        entries = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((n, json.loads(line)))
            except ValueError as exc:
                raise NeuroOncoError(f"{path} line {n} is not valid JSON: {exc}") from None
    for n, entry in entries:
        if not isinstance(entry, dict) or not entry.get("slice_id"):
            raise NeuroOncoError(f"{path} entry {n}: an object with a slice_id is needed")
    return entries


def plan_from_file(
    db_path: Path, paused: list[PausedSlice], path: Path, reviewer: str | None
) -> tuple[list[tuple[PausedSlice, dict[str, Any]]], list[str]]:
    """(the checked decisions in file order, slices skipped as already resumed)."""
    by_id = {p.slice_id: p for p in paused}
    plan, skipped, seen = [], [], set()
    db = store.connect(db_path)
    try:
        for n, entry in read_decisions(path):
            sid = str(entry["slice_id"])
            if sid in seen:
                raise NeuroOncoError(f"{path} entry {n}: slice {sid} is decided twice")
            seen.add(sid)
            if sid not in by_id:
                if resumed_by_interrupt(db, sid):
                    skipped.append(sid)
                    continue
                raise NeuroOncoError(
                    f"{path} entry {n}: slice {sid} is not awaiting review; "
                    f"`neuroonco review --db {db_path} --resume` lists those that are"
                )
            given = {**entry, "reviewer": entry.get("reviewer") or reviewer}
            try:
                plan.append((by_id[sid], check_decision(by_id[sid].payload, given)))
            except NeuroOncoError as exc:
                raise NeuroOncoError(f"{path} entry {n}: {exc}") from None
    finally:
        db.close()
    return plan, skipped


def parse_answer(answer: str) -> dict[str, Any] | str:
    """A prompt answer as a decision (``a``, ``r``, ``FIELD=VALUE ...``) or ``s``/``q``."""
    answer = answer.strip()
    if answer in ("s", "q"):
        return answer
    if answer == "a":
        return {"slice": "accept", "fields": {}}
    if answer == "r":
        return {"slice": "reject", "fields": {}}
    fields: dict[str, Any] = {}
    for token in answer.split():
        name, sep, value = token.partition("=")
        if not sep or not value:
            raise NeuroOncoError(f"{token!r}: give FIELD=VALUE (or FIELD=reject), or a, r, s, q")
        fields[name] = value if value in ("accept", "reject") else f"edit={value}"
    if not fields:
        raise NeuroOncoError("answer a, r, FIELD=VALUE ..., s or q")
    return {"slice": "accept", "fields": fields}


def describe(paused: PausedSlice, base: Path) -> str:
    """The pause's payload as a few lines a person can decide from."""
    p = paused.payload
    agreement = p.get("overall_agreement")
    lines = [
        f"slice {paused.slice_id} (run {paused.run_id}; agreement "
        f"{agreement if agreement is not None else '-'}; disputed: "
        f"{', '.join(p.get('disputed') or ()) or '-'})",
        f"  image {base / p['image_path']}" if p.get("image_path") else "  image -",
    ]
    if p.get("mask_path"):
        lines.append(f"  mask  {base / p['mask_path']}")
    for reason in p.get("reasons") or ():
        lines.append(f"  why   {reason}")
    raters = list(p.get("votes") or {})
    for name in REVIEW_FIELDS:
        votes = " ".join(f"{r}={p['votes'][r].get(name)}" for r in raters if name in p["votes"][r])
        verdicts = [
            f"{key}: {c['verdicts'][name]['action']}"
            for key, c in (p.get("critiques") or {}).items()
            if name in (c.get("verdicts") or {})
        ]
        critic = f"  critic {'; '.join(verdicts)}" if verdicts else ""
        lines.append(f"  {name:16} {p['consensus'].get(name)!s:20} {votes}{critic}")
    return "\n".join(lines)


def resume_command(
    db: Path,
    *,
    decisions: Path | None,
    reviewer: str | None,
    interactive: bool,
) -> None:
    """List, ask for or apply the decisions on the slices `annotate --review` paused."""
    paused, missing = asyncio.run(find_paused(db))
    if missing:
        typer.echo(
            f"{len(missing)} needs_review slices of --review runs have no checkpoint to resume "
            f"(review them with `neuroonco review --db {db}`)"
        )
    if decisions is not None:
        plan, skipped = plan_from_file(db, paused, decisions, reviewer)
        done = asyncio.run(resume_slices(db, plan))
        _report(done, skipped, len(paused) - len(plan))
        return
    if not paused:
        typer.echo(f"No slice awaits review in {db}")
        return
    ask = interactive or (os.isatty(0) and not os.environ.get("CI"))
    if not ask:
        typer.echo(f"{len(paused)} slices await review:")
        for item in paused:
            typer.echo(describe(item, db.parent))
        typer.echo(
            f"Decide at a terminal (`neuroonco review --db {db} --resume --reviewer NAME`) "
            "or from a file (--decisions FILE.jsonl)"
        )
        return
    if not reviewer:
        raise NeuroOncoError("--resume needs --reviewer NAME to record who decides")
    _ask(db, paused, reviewer)


def _ask(db: Path, paused: list[PausedSlice], reviewer: str) -> None:
    done: list[dict[str, Any]] = []
    for item in paused:
        typer.echo(describe(item, db.parent))
        while True:
            answer = typer.prompt(PROMPT, default="s")
            try:
                parsed = parse_answer(answer)
                if isinstance(parsed, str):
                    break
                checked = check_decision(item.payload, {**parsed, "reviewer": reviewer})
            except NeuroOncoError as exc:
                typer.echo(f"not recorded: {exc}")
                continue
            # Resumed at once: quitting later keeps every decision given so far.
            done += asyncio.run(resume_slices(db, [(item, checked)]))
            break
        if parsed == "q":
            break
    _report(done, [], len(paused) - len(done))


def _report(done: list[dict[str, Any]], skipped: list[str], waiting: int) -> None:
    rejected = sum(1 for c in done if c.get("status") == "rejected")
    text = f"Resumed {len(done)} slices ({len(done) - rejected} accepted, {rejected} rejected)"
    if skipped:
        text += f"; {len(skipped)} already resumed, skipped"
    typer.echo(text + f"; {waiting} still await review")
