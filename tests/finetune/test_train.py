"""The training loop on the tiny model: loss, outputs, resume after SIGKILL, reload, merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neuroonco.finetune.collate import collate, encode
from neuroonco.finetune.loading import load_base, load_with_adapter
from neuroonco.finetune.train import latest_checkpoint, train
from neuroonco.finetune.train_data import read_split
from tests.finetune.conftest import FAST, fast_config


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_over_20_steps(trained):
    out, result = trained
    losses = [m["loss"] for m in _metrics(out)]
    assert [m["step"] for m in _metrics(out)] == list(range(1, 21))
    assert losses == pytest.approx(result.losses, abs=1e-5)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3, losses
    assert all(m["tokens"] > 0 and m["tokens_per_s"] > 0 for m in _metrics(out))


def test_run_saves_adapter_processor_config_and_summary(trained):
    out, _ = trained
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 16 and adapter["lora_alpha"] == 32
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "processor" / "tokenizer.json").is_file()
    config = json.loads((out / "train_config.json").read_text())
    assert config["learning_rate"] == 5e-3 and config["schedule"] == "cosine"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["skipped"] == {}
    assert summary["peak_memory_mb"] > 0 and summary["tokens_per_s"] > 0
    assert (out / "merged" / "config.json").is_file()


def test_lora_is_on_the_language_model_only(export_dir, tmp_path):
    from neuroonco.finetune.train import prepare_model

    model, _ = prepare_model(fast_config(), torch.float32)
    adapted = {n for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert adapted and all("language_model" in n for n in adapted)
    assert not any("visual" in n for n in adapted)
    vision, _ = prepare_model(fast_config(lora_targets=["qkv", "q_proj"], lora_vision=True), None)
    assert any("visual" in n for n, _ in vision.named_modules() if n.endswith(".lora_A"))


def _batch(export_dir: Path, processor) -> dict:
    records = read_split(export_dir, "neuroonco_test")
    items = [encode(r, processor, 2048).features for r in records]
    return collate(items, processor.tokenizer.pad_token_id)


def test_saved_adapter_reloads_with_the_same_logits(trained, export_dir):
    out, _ = trained
    model, processor = load_with_adapter("tiny", out / "adapter")
    batch = _batch(export_dir, processor)
    model.eval()
    with torch.no_grad():
        reloaded = model(**batch).logits
        # The trained weights as the loop kept them (its last checkpoint), on a fresh base.
        base, _ = load_base("tiny")
        from neuroonco.finetune.train import lora_model

        fresh = lora_model(base, fast_config()).eval()
        state = torch.load(latest_checkpoint(out) / "adapter.pt")
        params = dict(fresh.named_parameters())
        for name, value in state.items():
            params[name].copy_(value)
        assert torch.allclose(fresh(**batch).logits, reloaded, atol=1e-6)
        plain, _ = load_base("tiny")
        assert not torch.allclose(plain(**batch).logits, reloaded, atol=1e-3)
        from transformers import Qwen2VLForConditionalGeneration

        merged = Qwen2VLForConditionalGeneration.from_pretrained(out / "merged").eval()
        assert torch.allclose(merged(**batch).logits, reloaded, atol=1e-4)
        # The merged folder is itself a base model (`transformers:OUT/merged`).
        again, _ = load_base(str(out / "merged"))
        assert torch.allclose(again.eval()(**batch).logits, reloaded, atol=1e-4)


def test_too_long_records_are_skipped_and_counted(export_dir, tmp_path):
    lines: list[str] = []
    # One-turn records are ~50 tokens, two-turn ones ~70 (with 16 image tokens each).
    result = train(
        export_dir,
        tmp_path / "out",
        fast_config(max_steps=2, max_length=60),
        progress=False,
        log=lines.append,
    )
    assert result.skipped == {"too_long": 4}
    assert any("skipped 4 of 8 records (too_long: 4" in line for line in lines)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["trained_records"] == 4


def _cli(export_dir: Path, out: Path, steps: int) -> list[str]:
    targets = ",".join(FAST["lora_targets"])
    return [
        sys.executable, "-m", "neuroonco.cli", "finetune", str(export_dir),
        "--base-model", "tiny", "--out", str(out), "--max-steps", str(steps),
        "--save-steps", "5", "--lora-targets", targets, "--lora-rank", "16",
        "--lora-alpha", "32", "--lr", "5e-3", "--batch-size", "2", "--grad-accum", "1",
        "--no-progress",
    ]  # fmt: skip


@pytest.mark.slow
def test_training_resumes_after_sigkill(export_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = 60
    proc = subprocess.Popen(
        _cli(export_dir, out, steps), env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while latest_checkpoint(out) is None and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    killed_at = int(latest_checkpoint(out).name.split("-")[1])
    assert killed_at < steps and not (out / "adapter").exists()
    done = subprocess.run(_cli(export_dir, out, steps), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resuming from step-{killed_at}" in done.stderr
    metrics = _metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))
    # The same losses as a run that was never interrupted: same batches, same optimizer state.
    reference = train(
        export_dir, tmp_path / "ref", fast_config(max_steps=steps, save_steps=5), progress=False
    )
    assert [m["loss"] for m in metrics] == pytest.approx(reference.losses, abs=1e-4)


@pytest.mark.slow
def test_runs_on_two_processes_under_a_distributed_launcher(export_dir, tmp_path):
    # What `accelerate launch --multi_gpu` does on GPUs (torch elastic, one process per device),
    # here on the CPU with gloo: the same command, unchanged.
    out = tmp_path / "out"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    done = subprocess.run(
        [*launcher, *_cli(export_dir, out, 4)[1:]], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    assert [m["step"] for m in _metrics(out)] == [1, 2, 3, 4]
    assert done.stdout.count("trained 4 steps") + done.stderr.count("trained 4 steps") == 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
