"""The annotated slices an instruction set is built from, streamed from the store.

One configuration (the annotation config hash of ``--run RUN``, or of the latest run) and, per
slice, its current annotation under that configuration: the newest row, since a resumed run adds
rows under new run ids. ``accepted`` only, unless more statuses are included. Duplicates
(``duplicate_of``) never produce instructions of their own. Rows are read through a cursor, so the
memory used does not grow with the number of slices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlite_utils

from neuroonco.errors import NeuroOncoError

STATUSES = ("accepted", "needs_review")


class NothingToExport(NeuroOncoError):
    """The store holds nothing the instruction set could be built from."""


@dataclass(frozen=True)
class RunChoice:
    """The configuration an instruction set is built from."""

    run_id: str
    config_hash: str


@dataclass
class AnnotatedSlice:
    slice_id: str
    run_id: str
    status: str
    subject_id: str
    group_id: str | None
    dataset: str | None
    image_path: str
    modality: str | None
    label: str | None
    split_hint: str | None
    findings: dict[str, Any]
    measurements: dict[str, Any]


def choose_run(db: sqlite_utils.Database, run: str | None, db_name: str) -> RunChoice:
    """The run named (or the latest one that annotated anything); a one-line error otherwise."""
    has_annotations = "annotations" in db.table_names() and db["annotations"].count > 0
    if not has_annotations:
        raise NothingToExport(
            f"no annotations in {db_name}: run `neuroonco annotate --db {db_name}` first"
        )
    if run is not None:
        row = db.execute("select id, config_hash from runs where id = ?", [run]).fetchone()
        if row is None:
            recent = [r[0] for r in db.execute("select id from runs order by started_at desc")]
            raise NothingToExport(
                f"no run {run!r} in {db_name}; runs there: {', '.join(recent[:5]) or 'none'}"
                " (omit --run for the latest)"
            )
        return RunChoice(row[0], row[1])
    row = db.execute(
        "select r.id, r.config_hash from runs r where exists"
        " (select 1 from annotations a where a.config_hash = r.config_hash)"
        " order by r.started_at desc limit 1"
    ).fetchone()
    if row is None:  # annotations without a runs row (an old store): take the newest annotation
        row = db.execute(
            "select run_id, config_hash from annotations order by created_at desc limit 1"
        ).fetchone()
    return RunChoice(row[0], row[1])


# The newest annotation of each slice under the configuration: grouped through the
# (config_hash, slice_id) index, so it streams in slice order without a subquery per row.
_CURRENT = """
with current as (
    select slice_id, max(created_at) as created_at from annotations
    where config_hash = ? group by slice_id
)
select a.slice_id, a.run_id, a.status, a.findings, s.subject_id, s.group_id, s.dataset,
       s.image_path, s.modality, s.label, s.split_hint, s.measurements
from current c
join annotations a on a.slice_id = c.slice_id and a.config_hash = ? and a.created_at = c.created_at
join slices s on s.id = a.slice_id
where s.duplicate_of is null and a.status in ({marks})
order by c.slice_id
"""


def count_by_status(db: sqlite_utils.Database, choice: RunChoice) -> dict[str, int]:
    rows = db.execute(
        "select a.status, count(*) from annotations a join slices s on s.id = a.slice_id"
        " where a.config_hash = ? and s.duplicate_of is null group by a.status",
        [choice.config_hash],
    )
    return {status: n for status, n in rows}


def check_selection(
    db: sqlite_utils.Database, choice: RunChoice, statuses: tuple[str, ...], db_name: str
) -> int:
    """How many slices the selection holds; a one-line error when none."""
    counts = count_by_status(db, choice)
    selected = sum(counts.get(s, 0) for s in statuses)
    if selected:
        return selected
    seen = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no annotations"
    hint = (
        " pass --include needs_review, or review them (`neuroonco review`)"
        if counts.get("needs_review")
        else f" run `neuroonco annotate --db {db_name}` first"
    )
    raise NothingToExport(
        f"nothing {'/'.join(statuses)} in run {choice.run_id} ({seen}):{hint}; nothing written"
    )


def iter_slices(
    db: sqlite_utils.Database, choice: RunChoice, statuses: tuple[str, ...]
) -> Iterator[AnnotatedSlice]:
    """The current annotation of every selected slice, in slice-id order (deterministic)."""
    sql = _CURRENT.format(marks=", ".join("?" for _ in statuses))
    cursor = db.conn.execute(sql, [choice.config_hash, choice.config_hash, *statuses])
    while batch := cursor.fetchmany(512):
        for row in batch:
            yield AnnotatedSlice(
                slice_id=row[0],
                run_id=row[1],
                status=row[2],
                findings=_json(row[3]),
                subject_id=row[4] or row[0],
                group_id=row[5],
                dataset=row[6],
                image_path=row[7],
                modality=row[8],
                label=row[9],
                split_hint=row[10],
                measurements=_json(row[11]),
            )


def _json(text: str | None) -> dict[str, Any]:
    """A stored JSON object (``{}`` for none). orjson reads it several times faster than json,
    which still reads what orjson refuses (NaN, which json.dumps writes)."""
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def iter_split_keys(db: sqlite_utils.Database, choice: RunChoice, statuses: tuple[str, ...]):
    """(slice id, subject, duplicate_of's subject, diagnosis, split hint) for every slice the
    split must keep together: selected ones and the duplicates that tie subjects together."""
    sql = (
        "select s.id, s.subject_id, o.subject_id, coalesce(json_extract(a.findings,"
        " '$.diagnosis'), s.label), s.split_hint, s.duplicate_of is null"
        " from slices s left join slices o on o.id = s.duplicate_of"
        " left join annotations a on a.slice_id = s.id and a.config_hash = ?"
        f"  and a.status in ({', '.join('?' for _ in statuses)})"
    )
    cursor = db.conn.execute(sql, [choice.config_hash, *statuses])
    while batch := cursor.fetchmany(2048):
        yield from batch
