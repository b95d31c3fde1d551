"""Against a real Ollama at OLLAMA_HOST, only when one answers (skipped otherwise)."""

from __future__ import annotations

import os

import httpx
import pytest

from neuroonco.agents.providers.ollama_provider import OllamaProvider
from tests.agents.providers.helpers import ask, fast_options, tiny_request

pytestmark = pytest.mark.live

# Read at import: the autouse fixture in conftest clears OLLAMA_HOST for the other tests.
LIVE_HOST = OllamaProvider("probe", host=os.environ.get("OLLAMA_HOST") or None).host


def pulled_models(host: str) -> list[str] | None:
    """Names of the pulled models, or None when no Ollama answers."""
    try:
        tags = httpx.get(host.rstrip("/") + "/api/tags", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    return [model["name"] for model in tags.get("models", [])]


def test_real_ollama_answers_a_structured_request():
    models = pulled_models(LIVE_HOST)
    if models is None:
        pytest.skip(f"no Ollama answering at {LIVE_HOST}")
    if not models:
        pytest.skip(f"Ollama at {LIVE_HOST} has no model pulled")
    provider = OllamaProvider(models[0], fast_options(timeout_s=300, max_retries=1), host=LIVE_HOST)
    request = tiny_request(
        prompt='Reply with this JSON object exactly: {"label": "glioma", "score": 0.5}'
    )
    result = ask(provider, request)
    assert result.attempts, result.error
    assert result.attempts[0].outcome in ("ok", "invalid_output")
    assert result.input_tokens > 0 and result.cost_usd == 0.0
    if result.ok:
        assert result.output.label == "glioma"
