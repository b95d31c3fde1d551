"""Graph fixtures: one ingested sample store per session, copied fresh for each test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from neuroonco.ingest import IngestOptions, ingest
from neuroonco.tools.sample_tree import write_sample_tree


@pytest.fixture(scope="session")
def annotated_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `src/` (the sample tree) and `store.db` with every slice ingested,
    BraTS cases with one tumour-free negative slice each."""
    root = tmp_path_factory.mktemp("graph")
    write_sample_tree(root / "src", seed=3, small=True)
    ingest([root / "src"], root / "store.db", IngestOptions(negatives=1))
    return root


@pytest.fixture
def fresh_db(annotated_source: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested store (database, salt, images)."""
    for name in ("store.db", "store.salt"):
        shutil.copy(annotated_source / name, tmp_path / name)
    shutil.copytree(annotated_source / "store_images", tmp_path / "store_images")
    return tmp_path / "store.db"
