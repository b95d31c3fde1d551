"""A store built by the real pipeline: the sample tree ingested and annotated with `builtin`."""

from __future__ import annotations

import shutil
from pathlib import Path

from neuroonco.graph.runner import annotate
from neuroonco.ingest import IngestOptions, ingest
from neuroonco.tools.sample_tree import write_sample_tree


def build_annotated_store(root: Path, seed: int = 3) -> Path:
    """``root/store.db``: every sample slice ingested (one negative per 3D case), annotated."""
    write_sample_tree(root / "src", seed=seed, small=True)
    db = root / "store.db"
    ingest([root / "src"], db, IngestOptions(negatives=1))
    annotate(db)
    return db


def copy_store(db: Path, target: Path) -> Path:
    """A private copy of a store (database, salt, images) in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in db.parent.iterdir():
        if path.name.startswith(db.stem) and path.is_file():
            shutil.copy(path, target / path.name)
    shutil.copytree(db.parent / f"{db.stem}_images", target / f"{db.stem}_images")
    return target / db.name
