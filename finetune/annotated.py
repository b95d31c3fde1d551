"""The annotated slices an instruction set is built from, streamed from the store.

One configuration (the annotation config hash of ``--run RUN``, or of the latest run) and, per
slice, its current annotation under that configuration: the newest row, since a resumed run adds
rows under new run ids. ``accepted`` only, unless more statuses are included. Duplicates
(``duplicate_of``) never produce instructions of their own. Rows are read through a cursor, so the
memory used does not grow with the number of slices.

The gold set wins (:mod:`neuroonco.review.gold`): a slice with any review gives its gold values in
place of the model consensus (an edited field takes the person's value, a rejected field is null
and asks nothing), a ``needs_review`` slice a person reviewed is selected without
``--include needs_review``, and a slice rejected as a whole gives nothing. A person's value is the
gold even against the mask: the measured numbers are still cited where they back it and dropped
where they do not, so no explanation argues for the person's value with a contradicting number.
Splits are planned from the model annotations, so a review never moves a subject between splits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlite_utils

from neuroonco.agents.evidence import intensity_hints
from neuroonco.errors import NeuroOncoError
from neuroonco.review import gold
from neuroonco.schemas.findings import finding_value

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
    reviewed: bool = False
    """A person reviewed the slice: ``findings`` are the gold values."""


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


def _reviewed_adjustment(
    db: sqlite_utils.Database, choice: RunChoice, statuses: tuple[str, ...], reviewed
) -> int:
    """How the gold set changes the selection's size: reviewed slices the statuses leave out
    come in, slices rejected as a whole go."""
    ids = sorted(reviewed.slices)
    change = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = db.execute(
            "select a.slice_id, a.status from annotations a join slices s on s.id = a.slice_id"
            f" where a.config_hash = ? and s.duplicate_of is null"
            f" and a.slice_id in ({', '.join('?' for _ in chunk)})",
            [choice.config_hash, *chunk],
        )
        for sid, status in rows:
            if sid in reviewed.rejected:
                change -= status in statuses
            elif status not in statuses and status in STATUSES:
                change += 1
    return change


def check_selection(
    db: sqlite_utils.Database, choice: RunChoice, statuses: tuple[str, ...], db_name: str
) -> int:
    """How many slices the selection holds; a one-line error when none."""
    counts = count_by_status(db, choice)
    selected = sum(counts.get(s, 0) for s in statuses)
    reviewed = gold.reviewed_set(db)
    if reviewed:
        selected += _reviewed_adjustment(db, choice, statuses, reviewed)
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
    """The current annotation of every selected slice, in slice-id order (deterministic); a
    reviewed slice with its gold values (module docstring)."""
    reviewed = gold.reviewed_set(db)
    wanted = statuses
    if reviewed:  # reviewed needs_review slices come in whatever the statuses
        wanted = tuple(dict.fromkeys((*statuses, *STATUSES)))
    sql = _CURRENT.format(marks=", ".join("?" for _ in wanted))
    cursor = db.conn.execute(sql, [choice.config_hash, choice.config_hash, *wanted])
    while batch := cursor.fetchmany(512):
        for row in batch:
            item = AnnotatedSlice(
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
            if not reviewed:
                yield item
            elif item.slice_id in reviewed.slices:
                if item.slice_id not in reviewed.rejected:
                    yield apply_review(item, reviewed.fields.get(item.slice_id, {}))
            elif item.status in statuses:
                yield item


# Field -> the measurement numbers the instruction templates cite for it.
_MASK_NUMBERS = {
    "size": ("area_fraction",),
    "shape": ("circularity", "elongation"),
    "spread": ("components", "largest_component_ratio"),
    "location": ("centroid",),
}
_INTENSITY_NUMBERS = {
    "signal_intensity": "contrast_ratio",
    "texture": "cv",
    "margins": "edge_sharpness",
}


def _measured(name: str, measurements: dict[str, Any], modality: str | None) -> Any:
    if name in _INTENSITY_NUMBERS:
        return intensity_hints(measurements, modality).get(name)
    try:
        return finding_value(name, measurements.get(name))
    except ValueError:
        return None


def apply_review(item: AnnotatedSlice, values: dict[str, Any]) -> AnnotatedSlice:
    """``item`` with the gold ``values`` in its findings and, for each field whose gold value
    the measurement does not give, the numbers behind that field left out of its
    measurements (the templates then state the person's finding without a number)."""
    findings = gold.overlay(item.findings, values)
    m = dict(item.measurements)
    for name, value in values.items():
        if value is None or _measured(name, item.measurements, item.modality) == value:
            continue
        for key in _MASK_NUMBERS.get(name, ()):
            m.pop(key, None)
        if name in _INTENSITY_NUMBERS and isinstance(m.get("intensity"), dict):
            number = _INTENSITY_NUMBERS[name]
            m["intensity"] = {
                seq: {k: v for k, v in stats.items() if k != number}
                if isinstance(stats, dict)
                else stats
                for seq, stats in m["intensity"].items()
            }
    item.findings, item.measurements, item.reviewed = findings, m, True
    return item


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
