"""Ollama specifics: the /api/show check (not pulled, not vision), OLLAMA_HOST, JSON-schema mode."""

from __future__ import annotations

import asyncio

import pytest

from neuroonco.agents.providers.base import ImagePart, ModelResult
from neuroonco.agents.providers.ollama_provider import DEFAULT_HOST, OllamaProvider
from neuroonco.errors import ConfigError
from tests.agents.providers.helpers import GOOD, PNG_A, ask, fast_options, tiny_request
from tests.support.loopback import LoopbackServer

IMAGE = (ImagePart(PNG_A, "axial"),)


def shows(server: LoopbackServer) -> int:
    return sum(1 for r in server.requests if r.path == "/api/show")


def test_model_not_pulled_raises_config_error_naming_ollama_pull(server: LoopbackServer):
    provider = OllamaProvider("llava:34b", fast_options(), host=server.url)
    with pytest.raises(ConfigError, match=r"not pulled .*run `ollama pull llava:34b`"):
        ask(provider)
    assert server.chat_requests() == []


def test_text_only_model_refuses_images(server: LoopbackServer):
    provider = OllamaProvider("llama3.2:3b", fast_options(), host=server.url)
    with pytest.raises(ConfigError, match=r"cannot read images .*`ollama pull qwen2.5vl:7b`"):
        ask(provider, tiny_request(images=IMAGE))
    assert server.chat_requests() == []


def test_text_only_model_answers_text_requests(server: LoopbackServer):
    server.enqueue(GOOD)
    result = ask(OllamaProvider("llama3.2:3b", fast_options(), host=server.url))
    assert result.ok


def test_server_without_capabilities_is_trusted(server: LoopbackServer):
    server.ollama_models["old-vision:1b"] = None
    server.enqueue(GOOD)
    provider = OllamaProvider("old-vision:1b", fast_options(), host=server.url)
    assert ask(provider, tiny_request(images=IMAGE)).ok


def test_model_is_checked_once_for_many_concurrent_calls(server: LoopbackServer):
    server.responder = lambda body: GOOD
    provider = OllamaProvider("qwen2.5vl:7b", fast_options(), host=server.url)

    async def go() -> list[ModelResult]:
        async with provider:
            first = await asyncio.gather(*(provider.complete(tiny_request()) for _ in range(5)))
            return [*first, await provider.complete(tiny_request())]

    results = asyncio.run(go())
    assert all(r.ok and len(r.attempts) == 1 for r in results)
    assert shows(server) == 1


def test_lookup_is_retried_and_not_counted_as_an_attempt(server: LoopbackServer):
    server.show_statuses.append(503)
    server.enqueue(GOOD)
    result = ask(OllamaProvider("qwen2.5vl:7b", fast_options(), host=server.url))
    assert result.ok and shows(server) == 2
    assert [a.outcome for a in result.attempts] == ["ok"]


def test_failed_lookup_is_an_error_result_and_retried_next_call(server: LoopbackServer):
    server.show_statuses.extend([503, 503])
    provider = OllamaProvider("qwen2.5vl:7b", fast_options(max_retries=1), host=server.url)
    server.enqueue(GOOD)

    async def go() -> tuple[ModelResult, ModelResult]:
        async with provider:
            return await provider.complete(tiny_request()), await provider.complete(tiny_request())

    failed, recovered = asyncio.run(go())
    assert failed.output is None and (failed.error or "").startswith("checking model: server error")
    assert [a.outcome for a in failed.attempts] == ["server_error", "server_error"]
    assert recovered.ok and shows(server) == 3


def test_ollama_host_env_is_honoured(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
    server.enqueue(GOOD)
    provider = OllamaProvider("qwen2.5vl:7b", fast_options())
    assert provider.host == server.url
    assert ask(provider).ok


def test_default_host():
    assert OllamaProvider("qwen2.5vl:7b").host == DEFAULT_HOST == "http://127.0.0.1:11434"


def test_repr_names_host_and_model(server: LoopbackServer):
    provider = OllamaProvider("qwen2.5vl:7b", host=server.url)
    assert repr(provider) == f"OllamaProvider(spec='ollama:qwen2.5vl:7b', host='{server.url}')"
