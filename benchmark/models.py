"""The bench model registry: a spec prefix (`openai`, `baseline`, `transformers`...) to a factory.

`bench run` asks a model for free text, one question at a time (or in batches when the model
offers `answer_batch`). A factory is registered per prefix:

    register_bench_model("transformers", factory)   # factory(spec, options) -> model

where the model has `async def answer(self, request: BenchRequest) -> BenchAnswer`, optionally
`async def answer_batch(self, requests: list[BenchRequest]) -> list[BenchAnswer]` and
`async def aclose(self)`. `options` holds the run's settings: `concurrency`, `timeout_s`, `seed`
and `questions` (the benchmark's questions, which the baselines read). A model never raises for
one question's failure: it returns a `BenchAnswer` with `error` set.

The built-in prefixes (`openai`, `anthropic`, `ollama`, `baseline`) are registered lazily on the
first lookup, so importing this module imports no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from neuroonco.errors import ConfigError


@dataclass
class BenchRequest:
    """One benchmark question as a model sees it: the prompt text and the image files."""

    question_id: str
    prompt: str
    images: list[Path]
    kind: Literal["closed", "open"]
    max_tokens: int = 512
    # Extras a model may use (the baselines do); language models read only prompt and images.
    question_type: str | None = None
    options: dict[str, str] | None = None
    temperature: float = 0.0


@dataclass
class BenchAnswer:
    """A model's free-text answer to one question, or the error that stopped it."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    error: str | None = None
    cost_usd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class BenchModel(Protocol):
    """What a factory returns (`answer_batch` and `aclose` are optional)."""

    async def answer(self, request: BenchRequest) -> BenchAnswer: ...


Factory = Callable[[str, dict[str, Any]], BenchModel]
_FACTORIES: dict[str, Factory] = {}
_BUILTINS_LOADED = False


def register_bench_model(prefix: str, factory: Factory) -> None:
    """Make `PREFIX:...` specs build their model with `factory(spec, options)`."""
    key = prefix.strip().lower()
    if not key or ":" in key:
        raise ValueError(f"a bench model prefix is one word without ':', got {prefix!r}")
    _FACTORIES[key] = factory


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from neuroonco.benchmark import baselines, text_models

    for prefix in text_models.PREFIXES:
        _FACTORIES.setdefault(prefix, text_models.make_text_model)
    _FACTORIES.setdefault("baseline", baselines.make_baseline)
    _FACTORIES.setdefault("transformers", _lazy_transformers)


def _lazy_transformers(spec: str, options: dict[str, Any]) -> BenchModel:
    """`transformers:PATH`: imports the finetune extra only when such a spec is used.

    The finetune package plugs in by calling `register_bench_model("transformers", factory)` when
    `neuroonco.finetune.inference` is imported (or by exposing `bench_model_factory` there).
    """
    try:
        import neuroonco.finetune.inference as inference
    except ImportError as exc:
        raise ConfigError(
            f"{spec!r} needs the finetune extra ({exc.name} is missing): "
            "pip install 'neuroonco[finetune]'"
        ) from exc
    factory = _FACTORIES.get("transformers")
    if factory is _lazy_transformers:
        factory = getattr(inference, "bench_model_factory", None)
    if factory is None or factory is _lazy_transformers:
        raise ConfigError(f"{spec!r}: this install's finetune package offers no bench model")
    return factory(spec, options)


def registered_prefixes() -> list[str]:
    """Every spec prefix `bench run` accepts now."""
    _load_builtins()
    return sorted(_FACTORIES)


def make_bench_model(spec: str, options: dict[str, Any] | None = None) -> BenchModel:
    """Build the model a spec names; ConfigError names the accepted prefixes when none fits."""
    _load_builtins()
    prefix = spec.strip().partition(":")[0].lower()
    factory = _FACTORIES.get(prefix)
    if factory is None:
        raise ConfigError(
            f"unknown model spec {spec!r} for bench run: use one of "
            f"{', '.join(p + ':...' for p in sorted(_FACTORIES))}"
        )
    return factory(spec.strip(), dict(options or {}))
