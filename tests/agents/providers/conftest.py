"""Fixtures for provider tests: a loopback server and providers of each kind pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from neuroonco.agents.providers.base import Provider, ProviderOptions
from neuroonco.agents.providers.registry import make_provider
from tests.support.loopback import LoopbackServer

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
SPECS = {
    "openai": "openai:gpt-4o-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "ollama": "ollama:qwen2.5vl:7b",
}


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Providers must not pick up a developer's real keys or servers."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_AUTH_TOKEN",
        "OLLAMA_HOST",
        "OLLAMA_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


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


@pytest.fixture
def make(server: LoopbackServer) -> Callable[..., Provider]:
    """make(kind, **option_changes) -> a provider pointed at the loopback server."""

    def build(kind: str, **changes: float) -> Provider:
        return provider_for(kind, server.url, fast_options(**changes))

    return build
