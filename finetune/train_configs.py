"""The same run for users who prefer LLaMA-Factory or ms-swift: configs written beside ours.

OUT/llamafactory/: dataset_info.json (our export's entry, file path made absolute, so the YAML
works from any folder) and train_lora.yaml with the same hyperparameters, run with
`llamafactory-cli train OUT/llamafactory/train_lora.yaml`. OUT/ms-swift/: train.jsonl (the
records with absolute image paths: ms-swift's own messages/images format) and train.sh calling
`swift sft` (ms-swift 3.x argument names). Torch-free.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from neuroonco.finetune.config import TrainConfig
from neuroonco.finetune.tiny import is_tiny
from neuroonco.finetune.train_data import dataset_entry, export_root, read_split


def llamafactory_template(base_model: str) -> str:
    """LLaMA-Factory's chat template name for a Qwen-VL family model (its registry names)."""
    name = base_model.lower().replace("_", "").replace("-", "")
    if "qwen3vl" in name:
        return "qwen3_vl_nothink" if "instruct" in name else "qwen3_vl"
    return "qwen2_vl"


def _precision(config: TrainConfig) -> dict[str, bool]:
    return {"bf16": config.precision in ("auto", "bf16"), "fp16": config.precision == "fp16"}


def llamafactory_yaml(config: TrainConfig, dataset_dir: Path, media_dir: Path, out: Path) -> dict:
    """LLaMA-Factory's LoRA SFT config with this run's hyperparameters."""
    values: dict[str, Any] = {
        "model_name_or_path": config.base_model,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": config.lora_rank,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "lora_target": ",".join(config.lora_targets),
        "freeze_vision_tower": not config.lora_vision,
        "dataset": config.dataset,
        "dataset_dir": str(dataset_dir),
        "media_dir": str(media_dir),
        "template": llamafactory_template(config.base_model),
        "cutoff_len": config.max_length,
        "output_dir": str(out / "llamafactory" / "output"),
        "logging_steps": 1,
        "save_steps": config.save_steps,
        "plot_loss": True,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "lr_scheduler_type": config.schedule,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "gradient_checkpointing": config.gradient_checkpointing,
        "seed": config.seed,
        **_precision(config),
    }
    if config.max_steps:
        values["max_steps"] = config.max_steps
    return values


def swift_command(config: TrainConfig, dataset: Path, out: Path) -> list[str]:
    """`swift sft` arguments for the same run (ms-swift 3.x names; 4.x renamed train_type)."""
    dtype = {"fp16": "float16", "fp32": "float32"}.get(config.precision, "bfloat16")
    args = [
        "swift", "sft",
        "--model", config.base_model,
        "--train_type", "lora",
        "--dataset", str(dataset),
        "--lora_rank", str(config.lora_rank),
        "--lora_alpha", str(config.lora_alpha),
        "--lora_dropout", str(config.lora_dropout),
        "--target_modules", *config.lora_targets,
        "--freeze_vit", "false" if config.lora_vision else "true",
        "--learning_rate", str(config.learning_rate),
        "--lr_scheduler_type", config.schedule,
        "--warmup_ratio", str(config.warmup_ratio),
        "--num_train_epochs", str(config.epochs),
        "--per_device_train_batch_size", str(config.batch_size),
        "--gradient_accumulation_steps", str(config.grad_accum),
        "--max_length", str(config.max_length),
        "--torch_dtype", dtype,
        "--gradient_checkpointing", str(config.gradient_checkpointing).lower(),
        "--save_steps", str(config.save_steps),
        "--seed", str(config.seed),
        "--output_dir", str(out / "ms-swift" / "output"),
    ]  # fmt: skip
    if config.max_steps:
        args += ["--max_steps", str(config.max_steps)]
    return args


def write_tool_configs(out: Path, config: TrainConfig, data_dir: Path) -> list[Path]:
    """Write the LLaMA-Factory and ms-swift files for this run; returns the paths written."""
    root = export_root(data_dir).resolve()
    out = out.resolve()
    entry = dict(dataset_entry(root, config.dataset))
    entry["file_name"] = str(root / entry["file_name"])
    lf = out / "llamafactory"
    lf.mkdir(parents=True, exist_ok=True)
    info = lf / "dataset_info.json"
    info.write_text(json.dumps({config.dataset: entry}, indent=2) + "\n", encoding="utf-8")
    lf_yaml = lf / "train_lora.yaml"
    note = "# Same run as `neuroonco finetune`: llamafactory-cli train " + str(lf_yaml) + "\n"
    if is_tiny(config.base_model):
        note += "# (tiny exists only in neuroonco: set model_name_or_path to a real model)\n"
    body = yaml.safe_dump(llamafactory_yaml(config, lf, root, out), sort_keys=False)
    lf_yaml.write_text(note + body, encoding="utf-8")

    swift = out / "ms-swift"
    swift.mkdir(parents=True, exist_ok=True)
    dataset = swift / "train.jsonl"
    with dataset.open("w", encoding="utf-8") as handle:
        for record in read_split(data_dir, config.dataset):
            line = {"messages": list(record.messages), "images": [str(p) for p in record.images]}
            handle.write(json.dumps(line) + "\n")
    script = swift / "train.sh"
    command = " \\\n    ".join(shlex.quote(a) for a in swift_command(config, dataset, out))
    script.write_text(f"#!/bin/sh\n# Same run as `neuroonco finetune`.\n{command}\n")
    script.chmod(0o755)
    return [info, lf_yaml, dataset, script]
