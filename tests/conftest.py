"""Session-wide fixtures: one synthetic sample tree of every layout and one store ingested from it.

Both are built once per test session in a temporary folder (about a second together) and are
read-only for the tests: a test that writes into a store takes :func:`ingested_db_copy` instead.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from neuroonco import store
from neuroonco.ingest import IngestSummary, ingest
from neuroonco.tools.sample_tree import SampleManifest, write_sample_tree


def snapshot_files(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class SampleTree:
    """The written tree, the manifest of what each reader should find, and its files as written."""

    root: Path
    manifest: SampleManifest
    files: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class IngestedStore:
    """A store made by :func:`neuroonco.ingest.ingest` from ``source``."""

    db_path: Path
    source: Path
    summary: IngestSummary

    @property
    def out_dir(self) -> Path:
        return self.db_path.parent

    @property
    def images_dir(self) -> Path:
        return store.images_dir(self.db_path)

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        """Rows as dicts, through a connection closed right after (no lingering -wal/-shm)."""
        with closing(sqlite3.connect(self.db_path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params)]

    def slices(self) -> list[dict]:
        return self.query("select * from slices order by rowid")

    def copy_to(self, dest: Path) -> IngestedStore:
        """A copy of the whole output folder (db, salt, images) under ``dest``."""
        shutil.copytree(self.out_dir, dest)
        return replace(self, db_path=dest / self.db_path.name)


@pytest.fixture(scope="session")
def sample_tree(tmp_path_factory: pytest.TempPathFactory) -> SampleTree:
    """Every supported layout, planted identifiers, a repackaged duplicate and broken files."""
    root = tmp_path_factory.mktemp("sample") / "sources"
    manifest = write_sample_tree(root, seed=0, small=True)
    return SampleTree(root, manifest, snapshot_files(root))


@pytest.fixture(scope="session")
def ingested_db(sample_tree: SampleTree, tmp_path_factory: pytest.TempPathFactory) -> IngestedStore:
    """The sample tree ingested with the default options into a fresh store (do not write to it)."""
    db_path = tmp_path_factory.mktemp("ingested") / "out" / "neuroonco.db"
    summary = ingest([sample_tree.root], db_path)
    return IngestedStore(db_path, sample_tree.root, summary)


@pytest.fixture
def ingested_db_copy(ingested_db: IngestedStore, tmp_path: Path) -> Iterator[IngestedStore]:
    """A private, writable copy of :func:`ingested_db`."""
    yield ingested_db.copy_to(tmp_path / "store")
