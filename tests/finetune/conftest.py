"""Fixtures of the fine-tuning tests: a small export and one tiny run trained once per session.

Tiny models are far faster on one thread on this shared 2-core machine (no thread contention),
so the tests pin torch to one thread; results are identical either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch

from neuroonco.finetune.config import TrainConfig
from tests.finetune.export import write_export

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
