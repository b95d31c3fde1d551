"""Shared pieces of the provider tests: a tiny response model, requests, providers, options."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from neuroonco.agents.providers.base import ModelRequest, ModelResult, Provider, ProviderOptions
from neuroonco.agents.providers.registry import make_provider

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
SPECS = {
    "openai": "openai:gpt-4o-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "ollama": "ollama:qwen2.5vl:7b",
}
KINDS = list(SPECS)
GOOD = {"label": "glioma", "score": 0.9}
PNG_A = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PNG_B = b"\x89PNG\r\n\x1a\n" + bytes(range(64, 160))


class Tiny(BaseModel):
    """A tiny answer: a label and a score."""

    label: str = Field(description="the diagnosis")
    score: float

    @field_validator("label")
    @classmethod
    def label_allowed(cls, value: str, info: ValidationInfo) -> str:
        allowed = (info.context or {}).get("allowed")
        if allowed and value not in allowed:
            raise ValueError(f"label must be one of {sorted(allowed)}")
        return value


def tiny_request(**changes: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "role": "describer",
        "system": "You describe brain MRI slices.",
        "prompt": "Describe the lesion.",
        "response_model": Tiny,
    }
    fields.update(changes)
    return ModelRequest(**fields)


def ask(provider: Provider, request: ModelRequest | None = None) -> ModelResult:
    """Run one call on a fresh event loop and close the provider."""

    async def go() -> ModelResult:
        try:
            return await provider.complete(request or tiny_request())
        finally:
            await provider.aclose()

    return asyncio.run(go())


def outcomes(result: ModelResult) -> list[str]:
    return [a.outcome for a in result.attempts]


def fast_options(**changes: float) -> ProviderOptions:
    """Small timeouts and backoff so fault tests take a fraction of a second."""
    settings = {
        "timeout_s": 2.0,
        "max_retries": 2,
        "validation_retries": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "max_concurrency": 8,
    }
    settings.update(changes)
    return ProviderOptions(**settings)  # type: ignore[arg-type]


def provider_for(kind: str, url: str, options: ProviderOptions | None = None) -> Provider:
    """A provider of `kind` whose server is `url` (a loopback server's root URL)."""
    options = options or fast_options()
    if kind == "openai":
        return make_provider(SPECS[kind], options, api_key=OPENAI_KEY, base_url=url + "/v1")
    if kind == "anthropic":
        return make_provider(SPECS[kind], options, api_key=ANTHROPIC_KEY, base_url=url)
    return make_provider(SPECS[kind], options, host=url)
