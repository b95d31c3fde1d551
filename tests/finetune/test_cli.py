"""`neuroonco finetune` as a user runs it: the core CLI stays torch-free, errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from neuroonco.cli import app
from neuroonco.errors import ConfigError

HEAVY = ("torch", "transformers", "peft", "accelerate")


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "neuroonco.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True, encoding="utf-8", errors="replace", timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"},
    )  # fmt: skip


def test_the_core_cli_imports_no_torch():
    help_call = "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
    code = (
        "import sys\n"
        "import neuroonco.cli as cli\n"
        "sys.argv = ['neuroonco', '--help']\n" + help_call +
        "sys.argv = ['neuroonco', 'finetune', '--help']\n" + help_call +
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )  # fmt: skip
    done = _run(code=code)
    assert done.returncode == 0, done.stderr
    assert "finetune-compare" in done.stdout and "--base-model" in done.stdout
    assert done.stdout.strip().endswith("[]")


def _error(*args: str) -> str:
    """The ConfigError a command raises in-process (main() prints it as one line, exit 2)."""
    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, ConfigError), result.output
    return str(result.exception)


def test_missing_export_is_one_clear_line(tmp_path):
    done = _run("finetune", str(tmp_path), "--base-model", "tiny", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no llamafactory export" in lines[0]
    assert "neuroonco instructions" in lines[0]


def test_unknown_base_model_says_how_to_fetch_it(export_dir, tmp_path):
    error = _error(
        "finetune", str(export_dir), "--base-model", "no-such/model-xyz", "--out", str(tmp_path)
    )
    assert "nor in the Hugging Face cache" in error and "hf download no-such/model-xyz" in error


def test_bad_option_is_one_clear_line(export_dir, tmp_path):
    error = _error(
        "finetune", str(export_dir), "--base-model", "tiny", "--out", str(tmp_path),
        "--schedule", "step",
    )  # fmt: skip
    assert "--schedule must be one of" in error


def test_a_broken_record_names_its_file_and_line(export_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(export_dir, data)
    train = data / "llamafactory" / "train.jsonl"
    lines = train.read_text().splitlines()
    record = json.loads(lines[2])
    record["images"] = []
    lines[2] = json.dumps(record)
    train.write_text("\n".join(lines) + "\n")
    error = _error("finetune", str(data), "--base-model", "tiny", "--out", str(tmp_path / "o"))
    assert f"{train}:3: 1 <image> markers but 0 images" in error


def test_llamafactory_and_ms_swift_configs_match_the_run(trained, export_dir):
    out, _ = trained
    lf = yaml.safe_load((out / "llamafactory" / "train_lora.yaml").read_text())
    config = json.loads((out / "train_config.json").read_text())
    assert lf["finetuning_type"] == "lora" and lf["freeze_vision_tower"] is True
    assert lf["lora_rank"] == config["lora_rank"] and lf["lora_alpha"] == config["lora_alpha"]
    assert lf["lora_target"] == ",".join(config["lora_targets"])
    assert lf["learning_rate"] == config["learning_rate"]
    assert lf["lr_scheduler_type"] == "cosine" and lf["warmup_ratio"] == 0.05
    assert lf["per_device_train_batch_size"] == 2 and lf["gradient_accumulation_steps"] == 1
    assert lf["template"] == "qwen2_vl" and lf["max_steps"] == 20 and lf["cutoff_len"] == 2048
    info = json.loads((Path(lf["dataset_dir"]) / "dataset_info.json").read_text())
    entry = info[lf["dataset"]]
    assert entry["formatting"] == "sharegpt" and Path(entry["file_name"]).is_file()
    first = json.loads(Path(entry["file_name"]).read_text().splitlines()[0])
    assert (Path(lf["media_dir"]) / first["images"][0]).is_file()
    script = (out / "ms-swift" / "train.sh").read_text()
    for flag in (
        "--train_type lora",
        "--lora_rank 16",
        "--freeze_vit true",
        "--learning_rate 0.005",
    ):
        assert flag in script.replace(" \\\n    ", " ")
    swift_rows = (out / "ms-swift" / "train.jsonl").read_text().splitlines()
    assert len(swift_rows) == 8
    assert all(
        Path(p).is_absolute() and Path(p).is_file() for p in json.loads(swift_rows[0])["images"]
    )
