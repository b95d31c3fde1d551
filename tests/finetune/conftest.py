"""Fixtures of tests/finetune: an annotated store and its instruction set (torch-free), and for
the training tests a small export and one tiny run trained once per session.

Tiny models are far faster on one thread on this shared 2-core machine (no thread contention),
so the training tests pin torch to one thread; results are identical either way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from neuroonco.finetune.config import TrainConfig
from tests.finetune.export import write_export
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


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


# Enough LoRA capacity and learning rate for a random tiny model to learn in 20 steps.
FAST = {
    "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "lora_rank": 16,
    "lora_alpha": 32,
    "learning_rate": 5e-3,
    "batch_size": 2,
    "grad_accum": 1,
}


def fast_config(**overrides) -> TrainConfig:
    return TrainConfig(base_model="tiny", **{**FAST, **overrides})


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"), n_train=8, n_val=2, n_test=4)


@pytest.fixture(scope="session")
def trained(export_dir, tmp_path_factory):
    """(out folder, TrainResult) of a 20-step tiny run with --merge."""
    from neuroonco.finetune.train import train

    out = tmp_path_factory.mktemp("run") / "out"
    result = train(
        export_dir, out, fast_config(max_steps=20, save_steps=10), merge=True, progress=False
    )
    return out, result
