"""Model specs (`provider:model`) to `Provider` instances.

`parse_spec` checks a spec and splits it; `make_provider` builds the provider, importing its SDK
only then, so `builtin` runs without any SDK configured. Overrides (`api_key`, `base_url`, `host`,
`mode`...) go to the provider constructor; otherwise each provider reads its SDK's usual
environment variables there.
"""

from __future__ import annotations

from typing import Any

from neuroonco.agents.providers.base import Provider, ProviderOptions
from neuroonco.errors import ConfigError

PROVIDERS = ("builtin", "openai", "anthropic", "ollama", "transformers")
EXAMPLES = "builtin, openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, ollama:qwen2.5vl:7b"
_INSTALL = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (provider, model); only the first ':' separates them.

    "openai:gpt-4o-mini" -> ("openai", "gpt-4o-mini"); "ollama:qwen2.5vl:7b" ->
    ("ollama", "qwen2.5vl:7b"); "builtin" -> ("builtin", "").
    """
    text = spec.strip()
    provider, _, model = text.partition(":")
    provider = provider.lower()
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown model provider {provider!r} in spec {spec!r}: "
            f"use one of {', '.join(PROVIDERS)} (e.g. {EXAMPLES})"
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
    try:
        if provider == "builtin":
            from neuroonco.agents.providers.builtin import BuiltinProvider

            return BuiltinProvider(canonical_spec(spec), options, **overrides)
        if provider == "openai":
            from neuroonco.agents.providers.openai_provider import OpenAIProvider

            return OpenAIProvider(model, options, **overrides)
        if provider == "transformers":  # a local (fine-tuned) VLM: the finetune extra
            from neuroonco.agents.providers.transformers_provider import TransformersProvider

            return TransformersProvider(model, options, **overrides)
        if provider == "anthropic":
            from neuroonco.agents.providers.anthropic_provider import AnthropicProvider

            return AnthropicProvider(model, options, **overrides)
        from neuroonco.agents.providers.ollama_provider import OllamaProvider

        return OllamaProvider(model, options, **overrides)
    except ImportError as exc:
        package = _INSTALL.get(provider)
        if package is None or exc.name not in (package, "instructor"):
            raise
        raise ConfigError(
            f"{spec!r} needs the {exc.name} package: pip install {exc.name} "
            "(or pass --describers builtin)"
        ) from exc
