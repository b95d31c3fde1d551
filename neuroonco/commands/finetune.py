"""`neuroonco finetune DATA_DIR --base-model PATH|tiny --out DIR`: LoRA SFT on our export.

Also `neuroonco finetune-compare`: base vs fine-tuned scores on one benchmark file, side by side.
torch and transformers are imported only when a command runs (the `finetune` extra), so the core
CLI starts without them and says how to install them when they are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuroonco.errors import ConfigError
from neuroonco.finetune.config import TrainConfig

_EXTRA = 'pip install "neuroonco[finetune]" (on CPU machines: pip install torch==2.13.0 first)'


def require_extra() -> None:
    """A clear error when the `finetune` extra is not installed."""
    import importlib.util

    missing = [
        name
        for name in ("torch", "transformers", "peft", "accelerate")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ConfigError(f"fine-tuning needs {', '.join(missing)}: {_EXTRA}")


def finetune_command(
    data_dir: Annotated[
        Path, typer.Argument(help="Export folder of `instructions --format llamafactory`.")
    ],
    base_model: Annotated[
        str, typer.Option("--base-model", help="Local model folder, a cached HF name, or tiny.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (resumes if it holds a run).")],
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after N optimizer steps.")
    ] = None,
    merge: Annotated[bool, typer.Option("--merge", help="Also write merged weights.")] = False,
    lora_rank: Annotated[int, typer.Option("--lora-rank")] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha")] = 16,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout")] = 0.0,
    lora_targets: Annotated[
        str, typer.Option("--lora-targets", help="Comma-separated module names.")
    ] = "q_proj,v_proj",
    lora_vision: Annotated[
        bool, typer.Option("--lora-vision", help="Also adapt the vision tower.")
    ] = False,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 1e-4,
    schedule: Annotated[
        str, typer.Option("--schedule", help="cosine, linear, constant, constant_with_warmup.")
    ] = "cosine",
    warmup_ratio: Annotated[float, typer.Option("--warmup-ratio")] = 0.05,
    epochs: Annotated[float, typer.Option("--epochs")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Per device.")] = 1,
    grad_accum: Annotated[int, typer.Option("--grad-accum")] = 8,
    max_length: Annotated[
        int, typer.Option("--max-length", help="Longer records are skipped, never truncated.")
    ] = 2048,
    precision: Annotated[str, typer.Option("--precision", help="auto, bf16, fp16, fp32.")] = "auto",
    no_gradient_checkpointing: Annotated[bool, typer.Option("--no-gradient-checkpointing")] = False,
    save_steps: Annotated[int, typer.Option("--save-steps", help="Checkpoint every N steps.")] = 50,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    dataset: Annotated[
        str, typer.Option("--dataset", help="dataset_info.json entry.")
    ] = "neuroonco_train",
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """LoRA fine-tuning of a vision-language model (Qwen2/2.5/3-VL) on the instruction export.

    Defaults are the paper's: LoRA q_proj,v_proj on the language model, lr 1e-4 cosine, warmup
    0.05, one epoch, bf16 where available. Run it again with the same --out to resume after a
    stop; `accelerate launch -m neuroonco.cli finetune ...` runs it on several GPUs."""
    config = TrainConfig(
        base_model=base_model,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=lora_targets.split(","),
        lora_vision=lora_vision,
        learning_rate=lr,
        schedule=schedule,
        warmup_ratio=warmup_ratio,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_steps=max_steps,
        max_length=max_length,
        precision=precision,
        gradient_checkpointing=not no_gradient_checkpointing,
        save_steps=save_steps,
        seed=seed,
        dataset=dataset,
    )
    from neuroonco.finetune.train_data import read_split

    read_split(data_dir, dataset)  # a broken export fails here, before torch is imported
    require_extra()
    from rich.console import Console

    from neuroonco.finetune.train import train

    console = Console(stderr=True)
    result = train(data_dir, out, config, merge=merge, progress=not no_progress, log=console.print)
    if not result.main:
        return
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    console.print(
        f"trained {result.steps} steps (from step {result.resumed_from}), final loss {last}, "
        f"{result.tokens_per_s:.0f} tokens/s, peak memory {result.peak_memory_mb:.0f} MB; "
        f"adapter in {out / 'adapter'}"
    )


def compare_command(
    bench: Annotated[Path, typer.Argument(help="Benchmark file (closed.json or open.json).")],
    base: Annotated[str, typer.Option("--base", help="Base model spec, e.g. transformers:DIR.")],
    tuned: Annotated[
        str,
        typer.Option(
            "--tuned", help="Fine-tuned spec, e.g. 'transformers:DIR?adapter=RUN/adapter'."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for predictions, scores, table.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Answer length limit.")] = None,
    resamples: Annotated[int, typer.Option(min=0, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Base vs fine-tuned on the same benchmark file: run both, score both, one table.

    Any `bench run` spec works for either side; the difference has a paired bootstrap interval."""
    from rich.console import Console
    from rich.table import Table

    from neuroonco.finetune.compare import _pct, compare_models

    console = Console()

    def progress(label: str, spec: str, summary) -> None:
        console.print(
            f"{label}: {spec}: {summary.answered} answered, {summary.skipped} already there, "
            f"{summary.errors} errors"
        )

    rows, metrics = compare_models(
        bench, base, tuned, out, limit=limit, max_tokens=max_tokens, resamples=resamples,
        seed=seed, on_progress=progress,
    )  # fmt: skip
    table = Table(title=f"{bench.name}: base vs fine-tuned, {metrics['n']} questions (95% CI)")
    for column in ("metric", "base", "fine-tuned", "difference (paired)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for r in rows:
        table.add_row(
            r.metric, _pct(r.base, r.base_ci), _pct(r.tuned, r.tuned_ci),
            _pct(r.delta, r.delta_ci, signed=True),
        )  # fmt: skip
    console.print(table)
    console.print(f"table: {out / 'compare.md'}  report: {out / 'score' / 'report.md'}")
