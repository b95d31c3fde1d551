"""Fixtures for provider tests: a loopback server and providers of each kind pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from neuroonco.agents.providers.base import Provider
from tests.agents.providers.helpers import fast_options, provider_for
from tests.support.loopback import LoopbackServer


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


@pytest.fixture
def make(server: LoopbackServer) -> Callable[..., Provider]:
    """make(kind, **option_changes) -> a provider pointed at the loopback server."""

    def build(kind: str, **changes: float) -> Provider:
        return provider_for(kind, server.url, fast_options(**changes))

    return build
