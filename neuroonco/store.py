"""The SQLite store (DESIGN.md, contract): one file, WAL mode, append-only migrations.

Every table named in the design is created by a numbered migration; `_migrations` records which
ran, so opening an old database brings it up to date and never rewrites history. Slice images
are written next to the database in ``<db stem>_images/``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from neuroonco.connection import open_connection
from neuroonco.errors import StoreError

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_slices(db: sqlite_utils.Database) -> None:
    db["slices"].create(
        {
            "id": str,
            "dataset": str,
            "source_format": str,
            "source_path": str,
            "subject_id": str,
            "group_id": str,
            "modality": str,
            "plane": str,
            "slice_index": int,
            "image_path": str,
            "mask_path": str,
            "label": str,
            "measurements": str,
            "content_hash": str,
            "perceptual_hash": str,
            "duplicate_of": str,
            "mask_kind": str,
            "split_hint": str,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["slices"].create_index(["content_hash"], if_not_exists=True)
    db["slices"].create_index(["group_id"], if_not_exists=True)
    db["slices"].create_index(["subject_id"], if_not_exists=True)
    db["rejected_inputs"].create(
        {"path": str, "reason": str, "created_at": str}, pk="path", if_not_exists=True
    )
    db["ingested_sources"].create(
        {"source_key": str, "n_slices": int, "created_at": str},
        pk="source_key",
        if_not_exists=True,
    )


@migration
def m002_annotation_tables(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": str,
            "started_at": str,
            "finished_at": str,
            "config": str,
            "versions": str,
            "config_hash": str,
            "summary": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["agent_calls"].create(
        {
            "id": str,
            "run_id": str,
            "slice_id": str,
            "role": str,
            "model": str,
            "round": int,
            "prompt": str,
            "response": str,
            "output": str,
            "error": str,
            "attempts": int,
            "latency_ms": float,
            "input_tokens": int,
            "output_tokens": int,
            "cost_usd": float,
            "cached": int,
            "cache_key": str,
            "attempt_log": str,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["agent_calls"].create_index(["cache_key"], if_not_exists=True)
    db["agent_calls"].create_index(["run_id", "slice_id"], if_not_exists=True)
    db["annotations"].create(
        {
            "slice_id": str,
            "run_id": str,
            "status": str,
            "findings": str,
            "agreement": float,
            "rounds": int,
            "error": str,
            "config_hash": str,
            "agreement_by_field": str,
            "created_at": str,
        },
        pk=("slice_id", "run_id"),
        if_not_exists=True,
    )
    db["annotations"].create_index(["config_hash", "slice_id"], if_not_exists=True)
    db["instructions"].create(
        {
            "id": str,
            "slice_id": str,
            "run_id": str,
            "task": str,
            "kind": str,
            "question": str,
            "options": str,
            "answer": str,
            "split": str,
        },
        pk="id",
        if_not_exists=True,
    )


@migration
def m003_call_target(db: sqlite_utils.Database) -> None:
    """Which describer of the panel a describer or critic call was about ("<i>:<spec>")."""
    if "target" not in db["agent_calls"].columns_dict:
        db["agent_calls"].add_column("target", str)


@migration
def m004_graph_overrides(db: sqlite_utils.Database) -> None:
    """What the fact policy overruled for an annotation (JSON list: step, model, field, said,
    kept, reason, target)."""
    if "overrides" not in db["annotations"].columns_dict:
        db["annotations"].add_column("overrides", str)


@migration
def m006_geom_detail_hash(db: sqlite_utils.Database) -> None:
    """A second, orientation-sensitive perceptual hash per slice (tools/dedup.detail_hash): the
    DCT pHash has no signal on left-right symmetric images."""
    if "detail_hash" not in db["slices"].columns_dict:
        db["slices"].add_column("detail_hash", str)


@migration
def m007_instr_columns(db: sqlite_utils.Database) -> None:
    """Instruction rows record their answer style, the assistant's text, trap and original
    answer, the open tasks' keywords, the template used and whether a model paraphrased it."""
    table = db["instructions"]
    columns = table.columns_dict
    for name, kind in (
        ("style", str),
        ("response", str),
        ("trap", int),
        ("original_answer", str),
        ("keywords", str),
        ("template", int),
        ("paraphrased", int),
    ):
        if name not in columns:
            table.add_column(name, kind)


@migration
def m009_review_tables(db: sqlite_utils.Database) -> None:
    """A person's word on one field (`reviews`, DESIGN.md contract; the latest per slice and
    field is the gold set) and the stored results of `neuroonco agreement`."""
    db["reviews"].create(
        {
            "id": int,
            "slice_id": str,
            "field": str,
            "decision": str,
            "value": str,
            "reviewer": str,
            "created_at": str,
            "source": str,
            "run_id": str,
            "note": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["reviews"].create_index(["slice_id", "field", "created_at"], if_not_exists=True)
    db["review_agreement"].create(
        {
            "run_id": str,
            "votes": str,
            "field": str,
            "kind": str,
            "metric": str,
            "rater": str,
            "value": float,
            "n": int,
            "created_at": str,
        },
        if_not_exists=True,
    )
    db["review_agreement"].create_index(["run_id", "votes"], if_not_exists=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str | None:
    """JSON text for a JSON column (None stays NULL)."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the store at ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(open_connection(path))
        migrate(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"cannot open the store {path}: {exc}. Is it a NeuroOnco SQLite file? "
            "Point --db at a new path to start a fresh store."
        ) from exc
    return db


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations that have not run yet; returns their names."""
    table = db["_migrations"]
    if not table.exists():
        table.create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in table.rows}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        # Migrations use IF NOT EXISTS, so one interrupted half-way simply runs again.
        fn(db)
        table.insert({"name": name, "applied_at": now()})
        applied.append(name)
    return applied


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """One short write transaction (the connection is in autocommit mode otherwise)."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def images_dir(db_path: Path | str) -> Path:
    """Where normalised slice PNGs of the store at ``db_path`` live."""
    db_path = Path(db_path)
    return db_path.parent / f"{db_path.stem}_images"
