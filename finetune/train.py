"""LoRA supervised fine-tuning of a vision-language model on our llamafactory export.

The loop is a plain PyTorch one driven by `accelerate` (so `accelerate launch` on several GPUs runs
it unchanged: each process takes its share of the batches and gradients are all-reduced), over
peft LoRA weights on the language model only. It is written out rather than delegated to the HF
Trainer for three things the Trainer does not give as wanted here: checkpoints that a SIGKILL
cannot leave half-written (each is written to a temporary folder and renamed into place), the
exact batch order resumed from any step without replaying data, and a progress bar and metrics
file with the loss and tokens/s of every optimizer step.

The records are encoded once before training (as LLaMA-Factory preprocesses its dataset) and kept
in memory up to `CACHE_BYTES`; past that they are re-encoded as they are drawn.

Output folder: adapter/ (peft), processor/, train_config.json, metrics.jsonl (one line per
step), summary.json, checkpoints/step-N/ (the latest, for resuming), llamafactory/ and ms-swift/
configs for the same run, and merged/ with --merge.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError
from neuroonco.finetune.collate import IGNORE, Encoded, Skip, collate, encode
from neuroonco.finetune.config import TrainConfig
from neuroonco.finetune.train_data import Record, read_split

CACHE_BYTES = 2 * 1024**3
CHECKPOINTS = "checkpoints"


@dataclass
class TrainResult:
    """What a run did (also written to summary.json)."""

    out: Path
    steps: int
    resumed_from: int
    records: int
    skipped: dict[str, int]
    losses: list[float] = field(default_factory=list)  # per step, averaged over processes
    tokens_per_s: float = 0.0
    peak_memory_mb: float = 0.0
    seconds: float = 0.0
    loop_seconds: float = 0.0  # the step loop, checkpoints included (no loading or encoding)
    checkpoint_seconds: float = 0.0  # of which writing checkpoints
    loop_cpu_seconds: float = 0.0  # CPU time of the loop (steady on a shared machine)
    main: bool = True  # the main process (the one that wrote the outputs)


class EncodedRecords:
    """The trainable records, encoded; skipped ones counted by reason."""

    def __init__(self, records: list[Record], processor: Any, max_length: int) -> None:
        self.records: list[Record] = []
        self.cache: list[Encoded | None] = []
        self.skipped: Counter[str] = Counter()
        self.processor = processor
        self.max_length = max_length
        budget = CACHE_BYTES
        for record in records:
            try:
                item = encode(record, processor, max_length)
            except Skip as exc:
                self.skipped[exc.reason] += 1
                continue
            size = sum(v.numel() * v.element_size() for v in item.features.values())
            budget -= size
            self.records.append(record)
            self.cache.append(item if budget > 0 else None)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Encoded:
        item = self.cache[index]
        return item if item is not None else encode(self.records[index], self.processor, 10**9)


def batch_plan(n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> list:
    """This process's batches (lists of record indices) for one epoch: a seeded shuffle.

    Every process computes the same permutation and takes every `world`-th batch, so the plan
    of any step is known without replaying the data (what makes resuming exact).
    """
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    per_rank = len(batches) // world if world > 1 else len(batches)
    return batches[rank::world][:per_rank]


def lora_model(model: Any, config: TrainConfig) -> Any:
    """peft LoRA on the modules matching the config's pattern (language model only by default)."""
    import re

    from peft import LoraConfig, get_peft_model

    pattern = config.target_pattern()
    names = [n for n, _ in model.named_modules() if re.fullmatch(pattern, n)]
    if not names:
        raise ConfigError(
            f"--lora-targets {','.join(config.lora_targets)} match no module of "
            f"{config.base_model} (pattern {pattern})"
        )
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=pattern,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def prepare_model(config: TrainConfig, dtype: Any) -> tuple[Any, Any]:
    """(peft model ready to train, processor)."""
    import torch

    from neuroonco.finetune.loading import load_base

    model, processor = load_base(config.base_model, dtype)
    model.config.use_cache = False
    # Checkpointing trades compute for GPU memory; on the CPU it only slows a step (100x on
    # tiny), so "where available" means on a CUDA device.
    on_gpu = torch.cuda.is_available()
    if config.gradient_checkpointing and on_gpu and model.supports_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return lora_model(model, config), processor


def trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (temporary folders of a killed save are ignored)."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / "state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, extra: dict):
    import torch

    root = out / CHECKPOINTS
    tmp = root / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(trainable_state(model), tmp / "adapter.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    # state.json last: a folder without it is not a checkpoint.
    (tmp / "state.json").write_text(json.dumps({"step": step, **extra}), encoding="utf-8")
    final = root / f"step-{step}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in root.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict:
    import torch

    state = torch.load(path / "adapter.pt", map_location="cpu")
    params = dict(model.named_parameters())
    missing = set(state) - set(params)
    if missing:
        raise ConfigError(
            f"checkpoint {path} does not fit this model/config (e.g. {sorted(missing)[0]}): "
            "use another --out, or delete the checkpoint to start over"
        )
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / "state.json").read_text(encoding="utf-8"))


def _keep_metrics_until(path: Path, step: int) -> None:
    """Drop metric lines of steps after the checkpoint: they are about to be redone."""
    if not path.is_file():
        return
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _check_same_run(out: Path, config: TrainConfig) -> None:
    saved = out / "train_config.json"
    if not saved.is_file():
        return
    before = TrainConfig.load(saved).as_dict()
    now = config.as_dict()
    # Bounding the run differently is how a user extends it; anything else changes the run.
    differs = [k for k in now if k != "max_steps" and before.get(k) != now[k]]
    if differs and latest_checkpoint(out) is not None:
        raise ConfigError(
            f"{out} holds a checkpoint of a run with other settings ({', '.join(differs)}): "
            "use another --out, or delete it to start over"
        )


def peak_memory_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def train(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    *,
    merge: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Run (or resume) one fine-tuning run; returns what it did."""
    import torch
    from accelerate import Accelerator
    from transformers import get_scheduler

    from neuroonco.finetune.loading import pick_dtype
    from neuroonco.finetune.train_configs import write_tool_configs

    started = time.perf_counter()
    records = read_split(data_dir, config.dataset)
    dtype = pick_dtype(config.precision)
    accelerator = Accelerator(mixed_precision="bf16" if dtype == torch.bfloat16 else "no")
    main = accelerator.is_main_process
    if not main:  # one log for the run, not one per process
        log = _quiet
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out, config)
    torch.manual_seed(config.seed)
    model, processor = prepare_model(config, dtype)
    data = EncodedRecords(records, processor, config.max_length)
    skipped = dict(data.skipped)
    if skipped:
        log(
            f"skipped {sum(skipped.values())} of {len(records)} records "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(skipped.items()))}; "
            f"--max-length is {config.max_length})"
        )
    if not len(data):
        raise ConfigError(f"no record of {data_dir} can be trained on (skipped: {skipped})")
    rank, world = accelerator.process_index, accelerator.num_processes
    per_epoch = len(batch_plan(len(data), config.batch_size, config.seed, 0, rank, world))
    if per_epoch == 0:
        raise ConfigError(f"{len(data)} records are too few for {world} processes")
    steps_per_epoch = math.ceil(per_epoch / config.grad_accum)
    total = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_scheduler(
        config.schedule,
        optimizer,
        num_warmup_steps=math.ceil(config.warmup_ratio * total),
        num_training_steps=total,
    )
    model.to(accelerator.device)
    start, tokens_seen = 0, 0
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer, scheduler)
        start, tokens_seen = state["step"], state.get("tokens", 0)
        log(f"resuming from {checkpoint.name} (step {start} of {total})")
    model, optimizer = accelerator.prepare(model, optimizer)
    metrics_path = out / "metrics.jsonl"
    if main:
        config.save(out / "train_config.json")
        _keep_metrics_until(metrics_path, start)
    result = TrainResult(out, total, start, len(records), skipped, main=main)
    plans: dict[int, list] = {}

    def micro_batch(index: int) -> dict[str, Any]:
        epoch, offset = divmod(index, per_epoch)
        if epoch not in plans:
            plans.clear()
            plans[epoch] = batch_plan(len(data), config.batch_size, config.seed, epoch, rank, world)
        items = [data[i].features for i in plans[epoch][offset]]
        batch = collate(items, processor.tokenizer.pad_token_id)
        return {k: v.to(accelerator.device) for k, v in batch.items()}

    bar = _progress(total, start) if progress and main else None
    model.train()
    loop_start = time.perf_counter()
    loop_cpu = time.process_time()
    loop_tokens = 0
    checkpoint_seconds = 0.0
    metrics_file = metrics_path.open("a", encoding="utf-8") if main else None
    try:
        for step in range(start, total):
            t0 = time.perf_counter()
            batches = [micro_batch(step * config.grad_accum + k) for k in range(config.grad_accum)]
            # Each micro-batch's mean loss weighted by its share of the step's answer tokens:
            # the step's loss is the mean over all its answer tokens, as one big batch would be.
            counts = [int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches]
            n_answer = max(sum(counts), 1)
            step_loss = 0.0
            step_tokens = 0
            for k, batch in enumerate(batches):
                last = k == len(batches) - 1
                with nullcontext() if last else accelerator.no_sync(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss * (counts[k] / n_answer))
                step_loss += float(loss.detach()) * counts[k] / n_answer
                step_tokens += int(batch["attention_mask"].sum())
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if world > 1:  # the logged loss and tokens are the whole step's, over all processes
                both = torch.tensor([step_loss, step_tokens], device=accelerator.device)
                both = accelerator.reduce(both, reduction="sum")
                step_loss, step_tokens = float(both[0]) / world, int(both[1])
            seconds = time.perf_counter() - t0
            tokens_seen += step_tokens
            loop_tokens += step_tokens
            result.losses.append(step_loss)
            if main:
                line = {
                    "step": step + 1,
                    "loss": round(step_loss, 6),
                    "lr": scheduler.get_last_lr()[0],
                    "tokens": step_tokens,
                    "tokens_per_s": round(step_tokens / seconds, 1),
                    "seconds": round(seconds, 4),
                }
                metrics_file.write(json.dumps(line) + "\n")
                metrics_file.flush()  # a killed run keeps every step it finished
                if bar is not None:
                    bar[0].update(bar[1], advance=1, loss=step_loss, tps=step_tokens / seconds)
            done = step + 1
            if done % config.save_steps == 0 or done == total:
                saving = time.perf_counter()
                accelerator.wait_for_everyone()
                if main:
                    unwrapped = accelerator.unwrap_model(model)
                    save_checkpoint(
                        out, done, unwrapped, optimizer, scheduler, {"tokens": tokens_seen}
                    )
                checkpoint_seconds += time.perf_counter() - saving
    finally:
        if metrics_file is not None:
            metrics_file.close()
        if bar is not None:
            bar[0].stop()
    elapsed = time.perf_counter() - loop_start
    result.loop_seconds = elapsed
    result.loop_cpu_seconds = time.process_time() - loop_cpu
    result.checkpoint_seconds = checkpoint_seconds
    result.tokens_per_s = loop_tokens / elapsed if elapsed > 0 and loop_tokens else 0.0
    result.peak_memory_mb = peak_memory_mb(accelerator.device)
    accelerator.wait_for_everyone()
    if main:
        unwrapped = accelerator.unwrap_model(model)
        _save_outputs(out, unwrapped, processor, config, data_dir, merge, write_tool_configs)
        result.seconds = time.perf_counter() - started
        summary = {
            "steps": total,
            "resumed_from": start,
            "records": len(records),
            "trained_records": len(data),
            "skipped": skipped,
            "final_loss": result.losses[-1] if result.losses else None,
            "tokens_per_s": round(result.tokens_per_s, 1),
            "peak_memory_mb": round(result.peak_memory_mb, 1),
            "seconds": round(result.seconds, 2),
            "device": str(accelerator.device),
            "processes": world,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    return result


def _save_outputs(
    out: Path,
    model: Any,
    processor: Any,
    config: TrainConfig,
    data_dir: Path,
    merge: bool,
    write_tool_configs: Callable[..., Any],
) -> None:
    model.save_pretrained(out / "adapter")
    config.save(out / "adapter" / "train_config.json")
    processor.save_pretrained(out / "processor")
    write_tool_configs(out, config, data_dir)
    if merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(out / "merged")
        processor.save_pretrained(out / "merged")


def _quiet(_: str) -> None:
    return None


def _progress(total: int, start: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[tps]:.0f} tok/s"),
        TimeElapsedColumn(),
    )
    task = bar.add_task("train", total=total, completed=start, loss=float("nan"), tps=0.0)
    bar.start()
    return bar, task
