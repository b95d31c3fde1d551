"""Loading a base vision-language model and its processor, from disk only, plus its adapter.

`tiny` is built in code (`finetune/tiny.py`). Anything else is a local folder or a model already
in the Hugging Face cache: nothing is downloaded at run time (`local_files_only`), so an unknown
name is a clear error saying how to fetch it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError
from neuroonco.finetune.tiny import build_tiny, is_tiny


def pick_dtype(precision: str) -> Any:
    """The weights' dtype: bf16 where the GPU supports it ("auto"), else fp32 on the CPU."""
    import torch

    if precision == "bf16" or (
        precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    ):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    return torch.float32


def _is_tiny_folder(path: Path) -> bool:
    config = path / "processor_config.json"
    return config.is_file() and '"TinyQwen2VLProcessor"' in config.read_text(encoding="utf-8")


def load_base(name: str, dtype: Any = None, seed: int = 0) -> tuple[Any, Any]:
    """(model, processor) for a --base-model value."""
    if is_tiny(name):
        model, processor = build_tiny(seed)
        if dtype is not None:
            model = model.to(dtype)
        return model, processor
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if _is_tiny_folder(Path(name)):  # merged weights of a tiny run: its processor is built here
        from neuroonco.finetune.tiny import build_processor

        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype)
        return model, build_processor()
    try:
        processor = AutoProcessor.from_pretrained(name, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(
            name, dtype=dtype, local_files_only=True
        )
    except OSError as exc:
        raise ConfigError(
            f"base model {name!r} is neither a local folder nor in the Hugging Face cache "
            f"(nothing is downloaded at run time): fetch it first, e.g. "
            f"`hf download {name}`, or pass --base-model tiny"
        ) from exc
    return model, processor


def load_with_adapter(
    base: str, adapter: Path | None = None, dtype: Any = None, merge: bool = False
) -> tuple[Any, Any]:
    """The base model with a saved LoRA adapter on top (merged into the weights if `merge`)."""
    model, processor = load_base(base, dtype)
    if adapter is None:
        return model, processor
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter} holds no adapter (no adapter_config.json)")
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(adapter))
    if merge:
        model = model.merge_and_unload()
    return model, processor
