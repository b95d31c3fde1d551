"""The training configuration of `neuroonco finetune`: one dataclass, the paper's defaults.

MM-NeuroOnco fine-tuned with LLaMA-Factory: LoRA on `q_proj,v_proj`, learning rate 1e-4 with a
cosine schedule, warmup ratio 0.05, one epoch, bf16. The batch defaults (1 per device, 8
accumulated) and the 2048-token cutoff are LLaMA-Factory's Qwen2-VL LoRA example's. This module is
torch-free: the CLI validates options and writes the LLaMA-Factory / ms-swift configs from it
without importing the training stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError

SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# Module-name parts of the vision towers of Qwen2-VL ("visual"), Qwen2.5-VL and Qwen3-VL
# ("visual") and of other VLMs ("vision_tower", "vision_model"): LoRA never targets them unless
# --lora-vision is given. Plain names like `q_proj` alone would hit Qwen2.5-VL's vision blocks.
VISION_PARTS = ("visual", "vision_tower", "vision_model", "vision_encoder")


@dataclass
class TrainConfig:
    """Every hyperparameter of a run; saved as train_config.json beside the adapter."""

    base_model: str
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    lora_vision: bool = False  # also adapt the vision tower
    learning_rate: float = 1e-4
    schedule: str = "cosine"
    warmup_ratio: float = 0.05
    epochs: float = 1.0
    batch_size: int = 1  # per device
    grad_accum: int = 8
    max_steps: int | None = None  # optimizer steps; bounds the run when set
    max_length: int = 2048  # tokens; longer records are skipped, never truncated
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto: bf16 where the device supports it, else fp32
    gradient_checkpointing: bool = True
    save_steps: int = 50  # a resumable checkpoint every N optimizer steps (and at the end)
    seed: int = 42
    split: str = "train"
    dataset: str = "neuroonco_train"  # dataset_info.json entry (LLaMA-Factory's name)

    def __post_init__(self) -> None:
        self.lora_targets = [t.strip() for t in self.lora_targets if t.strip()]
        checks = [
            (self.lora_rank >= 1, f"--lora-rank must be >= 1, got {self.lora_rank}"),
            (self.lora_alpha >= 1, f"--lora-alpha must be >= 1, got {self.lora_alpha}"),
            (
                0 <= self.lora_dropout < 1,
                f"--lora-dropout must be in [0, 1), got {self.lora_dropout}",
            ),
            (bool(self.lora_targets), "--lora-targets names no module (e.g. q_proj,v_proj)"),
            (self.learning_rate > 0, f"--lr must be > 0, got {self.learning_rate}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (
                0 <= self.warmup_ratio < 1,
                f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}",
            ),
            (self.epochs > 0, f"--epochs must be > 0, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be >= 1"),
            (self.max_length >= 16, f"--max-length must be >= 16, got {self.max_length}"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.save_steps >= 1, f"--save-steps must be >= 1, got {self.save_steps}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        for target in self.lora_targets:
            if not re.fullmatch(r"[A-Za-z0-9_.]+", target):
                raise ConfigError(f"--lora-targets: {target!r} is not a module name (e.g. q_proj)")

    def target_pattern(self) -> str:
        """The peft `target_modules` regex: the targets, outside the vision tower by default.

        peft full-matches a string pattern against each module's dotted name.
        """
        names = "|".join(re.escape(t) for t in self.lora_targets)
        if self.lora_vision:
            return rf"^(?:.*\.)?(?:{names})$"
        vision = "|".join(VISION_PARTS)
        return rf"^(?!(?:.*\.)?(?:{vision})\.)(?:.*\.)?(?:{names})$"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
