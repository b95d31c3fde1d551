"""Instruction-set fixtures: one annotated store per session, copied for tests that write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.annotated import build_annotated_store, copy_store


@pytest.fixture(scope="session")
def annotated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_annotated_store(tmp_path_factory.mktemp("instr"))


@pytest.fixture
def store_copy(annotated_store: Path, tmp_path: Path) -> Path:
    return copy_store(annotated_store, tmp_path / "store")


@pytest.fixture(scope="session")
def instruction_set(annotated_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every format written once from a private copy of the annotated store."""
    from neuroonco.finetune.instructions import InstructionOptions, build_instructions

    root = tmp_path_factory.mktemp("instrset")
    db = copy_store(annotated_store, root / "store")
    out = root / "out"
    stats = build_instructions(
        InstructionOptions(db=db, out=out, formats=["llamafactory", "llava", "openai", "hf"])
    )
    return db, out, stats
