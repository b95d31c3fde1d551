"""Model specs (`provider:model`) to `Provider` instances.

`parse_spec` checks a spec and splits it; `make_provider` builds the provider, importing its
module (and SDK) only then, so `builtin` runs without any SDK configured. Each provider is one
`register_provider` line naming its module and class; overrides (`api_key`, `base_url`, `host`,
`mode`...) go to the provider constructor, otherwise each provider reads its SDK's usual
environment variables there.

`provider_for` turns a spec's options from `--config` (README, "Model options") into provider
options, constructor overrides and the multi-image switch.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neuroonco.agents.providers.base import Provider, ProviderOptions
from neuroonco.errors import ConfigError


@dataclass(frozen=True)
class ProviderEntry:
    target: str  # "module:Class"; the class takes (model, options, **overrides)
    package: str | None = None  # the pip package its module needs
    overrides: tuple[str, ...] = ()  # constructor keywords it accepts from --config


REGISTRY: dict[str, ProviderEntry] = {}


def register_provider(
    name: str, target: str, *, package: str | None = None, overrides: tuple[str, ...] = ()
) -> None:
    """Make specs `name:MODEL` build `target` ("package.module:Class")."""
    REGISTRY[name] = ProviderEntry(target, package, overrides)


register_provider("builtin", "neuroonco.agents.providers.builtin:BuiltinProvider")
register_provider(
    "openai",
    "neuroonco.agents.providers.openai_provider:OpenAIProvider",
    package="openai",
    overrides=("api_key", "base_url", "mode", "send_temperature"),
)
register_provider(
    "anthropic",
    "neuroonco.agents.providers.anthropic_provider:AnthropicProvider",
    package="anthropic",
    overrides=("api_key", "base_url"),
)
register_provider(
    "ollama",
    "neuroonco.agents.providers.ollama_provider:OllamaProvider",
    package="ollama",
    overrides=("host",),
)
# A local (fine-tuned) VLM through transformers: the `finetune` extra.
register_provider(
    "transformers",
    "neuroonco.agents.providers.transformers_provider:TransformersProvider",
    package="transformers",
)

EXAMPLES = "builtin, openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, ollama:qwen2.5vl:7b"


def providers() -> tuple[str, ...]:
    return tuple(REGISTRY)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (provider, model); only the first ':' separates them.

    "openai:gpt-4o-mini" -> ("openai", "gpt-4o-mini"); "ollama:qwen2.5vl:7b" ->
    ("ollama", "qwen2.5vl:7b"); "builtin" -> ("builtin", "").
    """
    text = spec.strip()
    provider, _, model = text.partition(":")
    provider = provider.lower()
    if provider not in REGISTRY:
        raise ConfigError(
            f"unknown model provider {provider!r} in spec {spec!r}: "
            f"use one of {', '.join(REGISTRY)} (e.g. {EXAMPLES})"
        )
    model = model.strip()
    if provider != "builtin" and not model:
        raise ConfigError(
            f"model spec {spec!r} names no model: write {provider}:MODEL ({EXAMPLES})"
        )
    return provider, model


def canonical_spec(spec: str) -> str:
    """The spec as providers report it ("OpenAI: gpt-4o" -> "openai:gpt-4o")."""
    provider, model = parse_spec(spec)
    return f"{provider}:{model}" if model else provider


def make_provider(spec: str, options: ProviderOptions | None = None, **overrides: Any) -> Provider:
    """Build the provider a spec names; raises ConfigError for a bad spec or missing setup."""
    provider, model = parse_spec(spec)
    entry = REGISTRY[provider]
    module_name, _, class_name = entry.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        package = entry.package
        if package is None or exc.name not in (package, "instructor"):
            raise
        raise ConfigError(
            f"{spec!r} needs the {exc.name} package: pip install {exc.name} "
            "(or pass --describers builtin)"
        ) from exc
    return cls(model, options, **overrides)


def provider_for(
    spec: str, base: ProviderOptions, model_options: Mapping[str, Any] | None = None
) -> Provider:
    """The provider for ``spec`` with its `--config` options applied over ``base``."""
    opts = dict(model_options or {})
    provider, _ = parse_spec(spec)
    entry = REGISTRY[provider]
    changes: dict[str, Any] = {}
    if "timeout_s" in opts:
        changes["timeout_s"] = float(opts["timeout_s"])
    if "max_retries" in opts:
        changes["max_retries"] = int(opts["max_retries"])
    if "concurrency" in opts:
        changes["max_concurrency"] = int(opts["concurrency"])
    options = dataclasses.replace(base, **changes) if changes else base
    overrides: dict[str, Any] = {}
    if "api_key_env" in opts:
        name = opts["api_key_env"]
        if not os.environ.get(name):
            raise ConfigError(f"{spec}: api_key_env names {name}, which is not set: export {name}")
        overrides["api_key"] = os.environ[name]
    for key in ("base_url", "host", "mode", "send_temperature"):
        if key in opts:
            overrides[key] = opts[key]
    unsupported = [k for k in overrides if k not in entry.overrides]
    if unsupported:
        raise ConfigError(
            f"{spec}: option {unsupported[0]} does not apply to {provider}: models; "
            f"it takes {', '.join(entry.overrides) or 'none of them'}"
        )
    built = make_provider(spec, options, **overrides)
    if "multi_image" in opts:
        built.supports_multiple_images = bool(opts["multi_image"])
    return built
