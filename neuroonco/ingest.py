"""Ingestion: source trees -> normalised, measured, de-duplicated 2D slices in the store.

Cases stream from :func:`neuroonco.tools.readers.discover.discover`; a small thread pool loads and
slices a bounded number of them at a time (decompression, windowing and PNG encoding release the
GIL), while the calling thread de-duplicates in discovery order and writes each case in one short
transaction. Memory therefore stays flat however many cases a tree holds, and a second run over
the same tree adds nothing (each case's files are fingerprinted in ``ingested_sources``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils
from PIL import Image

from neuroonco import store
from neuroonco.errors import NeuroOncoError, UnreadableInput
from neuroonco.tools import dedup, measurements, phi, slicing
from neuroonco.tools.readers.base import LoadedCase, Rejection, SourceCase
from neuroonco.tools.readers.discover import discover
from neuroonco.tools.readers.reasons import one_line


def default_workers() -> int:
    """One thread per core, at most 4: each case in flight holds its volumes (about 100 MB for
    a BraTS case, two cases in flight per worker), and beyond 4 the store writer is the limit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


@dataclass
class IngestOptions:
    """How slices are taken from volumes and how duplicates are judged."""

    per_volume: int = 1
    """Axial slices per 3D case, spread across the tumour's extent (max-area slice included)."""
    negatives: int = 0
    """Tumour-free slices per 3D case to add as negatives."""
    near_duplicate_bits: int = dedup.NEAR_THRESHOLD
    """pHash Hamming distance at or below which two slices count as the same image."""
    workers: int = field(default_factory=default_workers)
    """Cases loaded and sliced concurrently (threads; gzip inflation and numpy free the GIL)."""


@dataclass
class IngestSummary:
    cases: int = 0
    slices: int = 0
    duplicates: int = 0
    skipped_cases: int = 0
    rejected: int = 0
    by_format: dict[str, int] = field(default_factory=dict)


@dataclass
class _SliceOut:
    row: dict[str, Any]
    png: bytes
    mask_png: bytes | None
    thumb: np.ndarray | None = None  # dedup.thumbnail of the image, for near-duplicate checks


def source_key(case: SourceCase, root: Path) -> str:
    """Fingerprint of a case's files (relative path, size, mtime): unchanged ones are skipped."""
    h = hashlib.sha256(case.source_format.encode())
    base = root if root.is_dir() else root.parent  # a file source pairs with its neighbours
    for path in case.files:
        st = path.stat()
        shown = Path(os.path.relpath(path, base)).as_posix()
        # surrogateescape: a file name that is not UTF-8 (Latin-1 bytes) hashes as its bytes.
        h.update(f"|{shown}|{st.st_size}|{st.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def _shown_path(root: Path, path: Path) -> str:
    """``path`` relative to the root (file roots: just the name), as stored in the store.

    Taken as walked (a file reached through a folder symlink keeps the link's path), resolved
    only for paths given another way."""
    for candidate in (path, path.resolve()):
        try:
            rel = candidate.relative_to(root)
        except ValueError:
            continue
        return rel.as_posix() if rel.parts else path.name
    return path.name


class IdentifierScopes:
    """Which identifiers apply to which paths of one source root.

    A subject's identifiers (a DICOM header's names, ids and dates) scrub the paths inside its
    own folder: the highest folder between its files and the root (the root included) whose
    name holds one of them (``DOE_JANE/``, ``03-14-2019-NA-MRI BRAIN-51234/``), else the folder
    of its files. So ``S1`` or ``10`` of one patient never scrubs ``S1`` or ``n10_probmask``
    elsewhere, while a report or preview beside the series in the patient folder is scrubbed of
    the patient's name. Distinctive name parts (:func:`phi.distinctive_tokens`: ``Jürgen``,
    ``山田``) scrub every path under the root: a file elsewhere may still be named after the
    patient. Built from the whole discovery of the root before anything of it is written,
    skipped (unchanged) cases included.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root if root.is_dir() else root.parent
        self._by_folder: dict[Path, set[str]] = defaultdict(set)
        self._everywhere: set[str] = set()

    def add(self, files: Iterable[Path], identifiers: Iterable[str]) -> None:
        identifiers = tuple(i for i in identifiers if i)
        if not identifiers:
            return
        for folder in {f.parent for f in files}:
            self._by_folder[self._scope(folder, identifiers)].update(identifiers)
        self._everywhere.update(phi.distinctive_tokens(identifiers))

    def _scope(self, folder: Path, identifiers: tuple[str, ...]) -> Path:
        chain = [folder, *folder.parents]
        chain = chain[: chain.index(self.base) + 1] if self.base in chain else [folder]
        named = [f for f in chain if f.name and phi.mentions(f.name, identifiers)]
        return named[-1] if named else folder

    def of(self, path: Path) -> tuple[str, ...]:
        """Every identifier whose scope holds ``path``."""
        found = set(self._everywhere)
        for folder in (path, *path.parents):
            found.update(self._by_folder.get(folder, ()))
        return tuple(sorted(found))


def _decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("L"))


def _short_hash(*parts: object) -> str:
    joined = "|".join(map(str, parts))
    return hashlib.sha256(joined.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def _choices(loaded: LoadedCase, options: IngestOptions) -> list[slicing.SliceChoice | None]:
    if not loaded.is_volume:
        return [None]
    first = next(iter(loaded.images.values()))
    return slicing.select_slices(
        loaded.mask,
        n_slices=first.shape[0],
        per_volume=options.per_volume,
        negatives=options.negatives,
        image=first,
    )


def slice_case(
    case: SourceCase,
    root: Path,
    salt: bytes,
    options: IngestOptions,
    identifiers: tuple[str, ...] = (),
) -> list[_SliceOut]:
    """Load one case and turn it into stored-slice rows plus their PNG bytes (worker side).

    ``identifiers`` are the patient identifiers whose scope holds the case (a DICOM folder
    named after the patient names the other files in it too, see :class:`IdentifierScopes`):
    paths and names are scrubbed of all of them, not only of the case's own.
    """
    loaded = case.load()
    identifiers = (*identifiers, *case.phi_strings)
    rel = _shown_path(root, case.files[0])
    source_paths = {
        channel: phi.scrub_relative_path(_shown_path(root, path), identifiers, salt)
        for channel, path in case.channel_files.items()
    }
    source_path = phi.scrub_relative_path(rel, identifiers, salt)
    dataset = phi.scrub_name(case.dataset, identifiers, salt)
    subject = phi.subject_id(f"{case.source_format}|{case.subject_key}", salt)
    windows = {name: slicing.window_bounds(img) for name, img in loaded.images.items()}
    out: list[_SliceOut] = []
    for choice in _choices(loaded, options):
        index = None if choice is None else choice.index
        pick = (lambda a: a) if index is None else (lambda a, i=index: a[i])
        mask2d = None if loaded.mask is None else np.ascontiguousarray(pick(loaded.mask))
        raw2d = {name: np.asarray(pick(img), np.float32) for name, img in loaded.images.items()}
        group_id = "grp-" + _short_hash(subject, rel, index)
        facts = _measure(raw2d, mask2d, loaded, index)
        # One mask per position: the sequences of a group share it (and its file).
        mask_png = None if mask2d is None else slicing.to_png_bytes(mask2d)
        for channel, img2d in raw2d.items():
            img8 = slicing.apply_window(img2d, *windows[channel])
            modality = None if channel == "unknown" else channel
            content_hash = dedup.pixel_hash(img8)
            slice_id = _short_hash(content_hash, case.source_format, rel, modality, index)
            out.append(
                _SliceOut(
                    row={
                        "id": slice_id,
                        "dataset": dataset,
                        "source_format": case.source_format,
                        "source_path": source_paths.get(channel, source_path),
                        "subject_id": subject,
                        "group_id": group_id,
                        "modality": modality,
                        "plane": loaded.plane or ("axial" if index is not None else None),
                        "slice_index": index,
                        "label": _label(case, mask2d, choice),
                        "measurements": store.dumps(facts),
                        "content_hash": content_hash,
                        "perceptual_hash": dedup.perceptual_hash(img8),
                        "detail_hash": dedup.detail_hash(img8),
                        "mask_kind": case.mask_kind if mask2d is not None else None,
                        "split_hint": case.split_hint,
                    },
                    png=slicing.to_png_bytes(img8),
                    mask_png=mask_png,
                    # Made here, in the worker: the main thread's near-duplicate check and
                    # later candidates' checks then need no PNG decoding.
                    thumb=dedup.thumbnail(img8),
                )
            )
    return out


def _measure(
    raw2d: dict[str, np.ndarray], mask2d: np.ndarray | None, loaded: LoadedCase, index: int | None
) -> dict[str, Any] | None:
    if mask2d is None:
        return None
    n = next(iter(loaded.images.values())).shape[0]
    facts = measurements.measure_mask(
        mask2d,
        orientation_known=loaded.orientation_known,
        mask_labels=loaded.mask_labels,
        plane=loaded.plane,
        slice_position=None if index is None else (index + 0.5) / n,
    )
    if facts is not None and loaded.pixel_spacing is not None:
        facts["pixel_spacing_mm"] = [round(float(v), 4) for v in loaded.pixel_spacing]
    if facts is None:  # an empty mask is a measured fact: no lesion on this slice
        return {"area_fraction": 0.0, "components": 0, "lesion": False}
    facts["lesion"] = True
    facts["intensity"] = measurements.intensity_stats(raw2d, mask2d, mask_labels=loaded.mask_labels)
    return facts


def _label(
    case: SourceCase, mask2d: np.ndarray | None, choice: slicing.SliceChoice | None
) -> str | None:
    """The source's diagnosis for this slice; a tumour-free slice of a tumour case is no_tumor."""
    if choice is not None and choice.is_negative:
        return "no_tumor"
    if case.label is not None:
        return case.label.value
    if mask2d is not None and mask2d.any():
        return "tumor"
    return None


class Ingestor:
    """Writes cases into one store; construct once per command, call :meth:`run` per source root."""

    def __init__(self, db: sqlite_utils.Database, db_path: Path, options: IngestOptions) -> None:
        self.db = db
        self.options = options
        self.base = db_path.parent
        self.images = store.images_dir(db_path)
        self.salt = phi.load_or_create_salt(db_path.with_suffix(".salt"))
        rows = db.execute(
            "select id, content_hash, perceptual_hash, subject_id, detail_hash, image_path "
            "from slices order by rowid"
        ).fetchall()
        # Near-duplicate candidates are confirmed on their stored pixels (see tools/dedup).
        self._image_paths: dict[str, str] = {r[0]: r[5] for r in rows if r[5]}
        self.index = dedup.DuplicateIndex(
            (r[:5] for r in rows), threshold=options.near_duplicate_bits, loader=self._pixels
        )
        self.done = {r[0] for r in db.execute("select source_key from ingested_sources")}
        self.summary = IngestSummary()
        self.scopes: IdentifierScopes  # set by run(), per source root

    def run(self, root: Path, on_case: Callable[[IngestSummary], None] | None = None) -> None:
        root = root.resolve()
        if not root.exists():
            raise NeuroOncoError(f"source {root} does not exist: check the path")
        # Discovery reads headers, not voxels: the whole root is discovered first so that every
        # identifier under it (unchanged, skipped cases included) is known before any write.
        items = list(discover(root))
        self.scopes = IdentifierScopes(root)
        for item in items:
            files = (item.path,) if isinstance(item, Rejection) else item.files
            self.scopes.add(files, item.phi_strings)
        rejections: list[Rejection] = []
        with ThreadPoolExecutor(max_workers=max(1, self.options.workers)) as pool:
            for case, key, result in self._pipeline(root, items, pool):
                if isinstance(case, Rejection):
                    rejections.append(case)
                elif isinstance(result, UnreadableInput):
                    rejections.extend(
                        Rejection(path, str(result), case.phi_strings) for path in case.files
                    )
                else:
                    self._write_case(case, key, result, root)
                if on_case is not None:
                    on_case(self.summary)
        for rejection in rejections:
            self._reject(root, rejection)
        if on_case is not None:
            on_case(self.summary)

    def _pipeline(
        self, root: Path, items: Iterable[SourceCase | Rejection], pool: ThreadPoolExecutor
    ) -> Iterator[tuple[Any, str | None, Any]]:
        """Keep a bounded window of cases in flight; yield results in discovery order."""
        window: deque[tuple[Any, str | None, Future | None]] = deque()
        limit = 2 * max(1, self.options.workers)
        for item in items:
            if isinstance(item, Rejection):
                window.append((item, None, None))
            else:
                key = source_key(item, root)
                if key in self.done:
                    self.summary.skipped_cases += 1
                    continue
                scoped = self.scopes.of(item.files[0])
                future = pool.submit(slice_case, item, root, self.salt, self.options, scoped)
                window.append((item, key, future))
            while len(window) > limit:
                yield self._settle(window.popleft())
        while window:
            yield self._settle(window.popleft())

    @staticmethod
    def _settle(entry: tuple[Any, str | None, Future | None]) -> tuple[Any, str | None, Any]:
        item, key, future = entry
        if future is None:
            return item, key, None
        try:
            return item, key, future.result()
        except UnreadableInput as exc:
            return item, key, exc
        except Exception as exc:  # a reader bug must not stop the run: record it and go on
            return item, key, UnreadableInput(f"could not read: {type(exc).__name__}: {exc}")

    def _write_case(
        self, case: SourceCase, key: str | None, slices: list[_SliceOut], root: Path
    ) -> None:
        rows = []
        for s in slices:
            row = s.row
            # Near-duplicates are sought among other subjects only: two positions or sequences
            # of one patient look alike without being copies of each other.
            row["duplicate_of"] = self.index.find(
                row["content_hash"],
                row["perceptual_hash"],
                row["subject_id"],
                detail=row.get("detail_hash"),
                thumb=s.thumb,
            )
            if row["duplicate_of"] == row["id"]:  # the very same slice re-read: nothing new
                continue
            row["image_path"] = self._write_png(row["id"], s.png)
            row["mask_path"] = (
                None
                if s.mask_png is None
                else self._write_png(f"{row['group_id']}_mask", s.mask_png)
            )
            row["created_at"] = store.now()
            self.index.add(
                row["id"],
                row["content_hash"],
                row["perceptual_hash"],
                row["subject_id"],
                detail=row.get("detail_hash"),
                thumb=s.thumb,
            )
            self._image_paths[row["id"]] = row["image_path"]
            rows.append(row)
        with store.transaction(self.db):
            self.db["slices"].insert_all(rows, ignore=True, alter=True)
            self.db["ingested_sources"].upsert(
                {"source_key": key, "n_slices": len(rows), "created_at": store.now()},
                pk="source_key",
            )
            self._forget_rejections(root, case)
        self.done.add(key)
        self.summary.cases += 1
        self.summary.slices += len(rows)
        self.summary.duplicates += sum(1 for r in rows if r["duplicate_of"])
        fmt = case.source_format
        self.summary.by_format[fmt] = self.summary.by_format.get(fmt, 0) + len(rows)

    def _pixels(self, slice_id: str) -> np.ndarray | None:
        """A stored slice's image, for the near-duplicate pixel check (None if gone)."""
        rel = self._image_paths.get(slice_id)
        try:
            return None if rel is None else _decode_png((self.base / rel).read_bytes())
        except (OSError, ValueError):
            return None

    def _write_png(self, name: str, data: bytes) -> str:
        path = self.images / name[-2:] / f"{name}.png"
        if not path.exists():  # a group's mask is shared by its sequences: written once
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path.relative_to(self.base).as_posix()

    def _rejection_key(self, root: Path, path: Path, phi_strings: Iterable[str] = ()) -> str:
        """The ``rejected_inputs.path`` of a source file: relative to its root, scrubbed."""
        ids = (*self.scopes.of(path), *phi_strings)
        return phi.scrub_relative_path(f"{root.name}/{_shown_path(root, path)}", ids, self.salt)

    def _forget_rejections(self, root: Path, case: SourceCase) -> None:
        """A file refused by an earlier run and read now (fixed, or its sibling arrived) is no
        longer a rejected input: its old row would tell the user to fix what works."""
        keys = [self._rejection_key(root, path, case.phi_strings) for path in case.files]
        marks = ",".join("?" * len(keys))
        self.db.execute(f"delete from rejected_inputs where path in ({marks})", keys)

    def _reject(self, root: Path, rejection: Rejection) -> None:
        ids = (*self.scopes.of(rejection.path), *rejection.phi_strings)
        shown = self._rejection_key(root, rejection.path, rejection.phi_strings)
        # Reasons name files by absolute path; the store keeps them as shown (relative, scrubbed),
        # on one line with no library paths (see readers.reasons).
        reason = rejection.reason.replace(str(rejection.path), shown)
        reason = phi.scrub_text(one_line(reason, root), ids, whole_words=True)
        known = self.db.execute(
            "select reason from rejected_inputs where path = ?", [shown]
        ).fetchone()
        if known is not None and known[0] == reason:
            return  # the same file refused for the same reason: an identical re-run adds nothing
        with store.transaction(self.db):
            self.db["rejected_inputs"].upsert(
                {"path": shown, "reason": reason, "created_at": store.now()}, pk="path"
            )
        self.summary.rejected += known is None


def ingest(
    sources: Iterable[Path],
    db_path: Path,
    options: IngestOptions | None = None,
    on_case: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Ingest every source root into the store at ``db_path``; returns what was added."""
    db_path, sources = Path(db_path), [Path(root) for root in sources]
    missing = [str(root) for root in sources if not root.exists()]
    if missing:  # before anything is created
        raise NeuroOncoError(f"source not found: {', '.join(missing)}; check the path")
    check_writable(db_path)
    db = store.connect(db_path)
    try:
        ingestor = Ingestor(db, db_path, options or IngestOptions())
        for root in sources:
            ingestor.run(root, on_case)
        return ingestor.summary
    finally:
        db.close()


def _probe(folder: Path) -> OSError | None:
    """Whether a file can be created in ``folder`` (tried: permission bits do not tell a
    read-only mount, and root ignores them); the probe is removed at once."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".neuroonco-probe-"):
            return None
    except OSError as exc:
        return exc


def check_writable(db_path: Path) -> None:
    """Refuse, in one line and before anything is written, a store whose folder, database files
    or images folder (and its sub-folders) cannot be written."""
    db_path = Path(db_path).absolute()
    existing = next(p for p in (db_path.parent, *db_path.parent.parents) if p.exists())
    images = store.images_dir(db_path)
    folders = [existing]
    if images.is_dir():
        folders += [images, *(p for p in sorted(images.iterdir()) if p.is_dir())]
    for folder in folders:
        if (exc := _probe(folder)) is not None:
            raise NeuroOncoError(
                f"cannot write to {folder} ({exc.strerror or exc}): the store is read-only; "
                "make it writable or choose another --db"
            )
    for path in (db_path, *(db_path.with_name(db_path.name + s) for s in ("-wal", "-shm"))):
        if path.exists() and not os.access(path, os.W_OK):
            raise NeuroOncoError(
                f"cannot write to {path} (read-only file); make it writable or choose another --db"
            )


def slice_rows(
    db: sqlite_utils.Database, where: str = "1=1", params: Iterable = ()
) -> Iterator[dict]:
    """Stored slices with their JSON columns decoded."""
    for row in db.query(f"select * from slices where {where} order by rowid", list(params)):
        if row.get("measurements"):
            row["measurements"] = json.loads(row["measurements"])
        yield row
