"""openai, anthropic and ollama providers, with their real SDK clients, against loopback servers."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from neuroonco.agents.providers.base import ImagePart, ModelResult
from neuroonco.agents.providers.openai_provider import OpenAIProvider
from tests.agents.providers.helpers import (
    ANTHROPIC_KEY,
    GOOD,
    KINDS,
    OPENAI_KEY,
    PNG_A,
    PNG_B,
    Tiny,
    ask,
    fast_options,
    outcomes,
    provider_for,
    tiny_request,
)
from tests.support.loopback import LoopbackServer, refused_url


@pytest.mark.parametrize("kind", KINDS)
def test_structured_output_parsed_with_usage(kind, make, server: LoopbackServer):
    server.enqueue(GOOD, input_tokens=120, output_tokens=30)
    result = ask(make(kind))
    assert result.error is None and result.ok
    assert type(result.output) is Tiny
    assert result.output == Tiny(label="glioma", score=0.9)
    assert outcomes(result) == ["ok"]
    assert (result.input_tokens, result.output_tokens) == (120, 30)
    assert (result.attempts[0].input_tokens, result.attempts[0].output_tokens) == (120, 30)
    assert '"glioma"' in (result.response or "")
    assert result.attempts[0].latency_ms > 0 and result.latency_ms >= result.attempts[0].latency_ms
    if kind == "ollama":
        assert result.cost_usd == 0.0
    else:
        assert result.cost_usd is not None and result.cost_usd > 0


@pytest.mark.parametrize("kind", KINDS)
def test_images_and_schema_sent_natively(kind, make, server: LoopbackServer):
    server.enqueue(GOOD)
    images = (ImagePart(PNG_A, "axial T1c"), ImagePart(PNG_B, "mask overlay"))
    result = ask(make(kind), tiny_request(images=images))
    assert result.ok
    (sent,) = server.chat_requests()
    body = sent.body
    b64 = [base64.b64encode(PNG_A).decode(), base64.b64encode(PNG_B).decode()]
    if kind == "openai":
        parts = body["messages"][-1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert urls == ["data:image/png;base64," + b for b in b64]
        assert {"type": "text", "text": "axial T1c"} in parts
        assert body["messages"][0] == {
            "role": "system",
            "content": "You describe brain MRI slices.",
        }
        function = body["tools"][0]["function"]
        assert function["name"] == "Tiny"
        assert set(function["parameters"]["properties"]) == {"label", "score"}
    elif kind == "anthropic":
        blocks = body["messages"][0]["content"]
        sources = [b["source"] for b in blocks if b["type"] == "image"]
        assert sources == [{"type": "base64", "media_type": "image/png", "data": b} for b in b64]
        assert body["system"] == "You describe brain MRI slices."
        assert body["tools"][0]["name"] == "Tiny"
        assert set(body["tools"][0]["input_schema"]["properties"]) == {"label", "score"}
        assert body["tool_choice"]["type"] == "tool"
    else:
        user = body["messages"][-1]
        assert user["images"] == b64
        assert "Image 1: axial T1c" in user["content"] and "Describe the lesion." in user["content"]
        assert body["format"] == Tiny.model_json_schema()
        assert not body.get("tools")
        assert body["options"]["num_predict"] == 1024


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", ["invalid_json", "schema_violation"])
def test_bad_output_is_reasked_and_tokens_summed(kind, fault, make, server: LoopbackServer):
    server.enqueue_fault(fault, input_tokens=100, output_tokens=20)
    server.enqueue(GOOD, input_tokens=150, output_tokens=25)
    result = ask(make(kind))
    assert result.ok, result.error
    assert outcomes(result) == ["invalid_output", "ok"]
    assert len(result.attempts) == 2
    assert (result.input_tokens, result.output_tokens) == (250, 45)
    assert "validation error" in (result.attempts[0].error or "").lower()
    first, reask = server.chat_requests()
    # The re-ask carries the previous answer and the validator's error text.
    assert len(reask.body["messages"]) > len(first.body["messages"])
    assert "validation error" in reask.raw.lower() or "did not validate" in reask.raw


@pytest.mark.parametrize("kind", KINDS)
def test_validation_context_reaches_validators(kind, make, server: LoopbackServer):
    server.enqueue({"label": "meningioma", "score": 0.5})
    server.enqueue(GOOD)
    result = ask(make(kind), tiny_request(validation_context={"allowed": ["glioma"]}))
    assert result.ok and result.output.label == "glioma"
    assert outcomes(result) == ["invalid_output", "ok"]
    assert "label must be one of ['glioma']" in server.chat_requests()[1].raw
    # The context is for validation only: it is never rendered into the prompt.
    assert "allowed" not in server.chat_requests()[0].raw


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_output_after_all_reasks_is_an_error_result(kind, make, server: LoopbackServer):
    for _ in range(2):
        server.enqueue_fault("schema_violation", payload={"label": "glioma"})
    result = ask(make(kind, validation_retries=1))
    assert result.output is None and not result.ok
    assert result.error is not None and result.error.startswith("invalid output after 2 answers")
    assert "score" in result.error
    assert outcomes(result) == ["invalid_output", "invalid_output"]
    assert result.input_tokens == 22


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_output_is_not_reasked(kind, make, server: LoopbackServer):
    server.enqueue_fault("truncated", payload={"label": "gli"})
    server.enqueue(GOOD)
    result = ask(make(kind))
    assert result.output is None and "truncated at max_tokens=1024" in (result.error or "")
    assert outcomes(result) == ["invalid_output"]


@pytest.mark.parametrize("kind", KINDS)
def test_429_waits_for_retry_after(kind, make, server: LoopbackServer):
    server.enqueue_fault("429", retry_after=0.25)
    server.enqueue(GOOD)
    started = time.perf_counter()
    result = ask(make(kind))
    elapsed = time.perf_counter() - started
    assert result.ok
    assert outcomes(result) == ["rate_limited", "ok"]
    assert result.attempts[0].retry_after_s == pytest.approx(0.25)
    assert "HTTP 429" in (result.attempts[0].error or "")
    # Backoff in these options is <= 0.05 s, so only Retry-After explains the wait.
    assert 0.25 <= elapsed < 2.0


@pytest.mark.parametrize("kind", KINDS)
def test_server_errors_are_retried(kind, make, server: LoopbackServer):
    server.enqueue_fault("500")
    server.enqueue_fault("503")
    server.enqueue(GOOD)
    result = ask(make(kind))
    assert result.ok
    assert outcomes(result) == ["server_error", "server_error", "ok"]
    assert "loopback fault 500" in (result.attempts[0].response or "")


@pytest.mark.parametrize("kind", KINDS)
def test_server_errors_exhaust_retries(kind, make, server: LoopbackServer):
    for _ in range(3):
        server.enqueue_fault("500")
    result = ask(make(kind, max_retries=2))
    assert result.output is None
    assert outcomes(result) == ["server_error"] * 3
    assert "HTTP 500" in (result.error or "") and "gave up after 3 attempts" in (result.error or "")


@pytest.mark.parametrize("kind", KINDS)
def test_timeouts_are_retried_then_an_error_result(kind, make, server: LoopbackServer):
    server.enqueue_fault("timeout", delay_s=5)
    server.enqueue_fault("timeout", delay_s=5)
    started = time.perf_counter()
    result = ask(make(kind, timeout_s=0.2, max_retries=1))
    assert time.perf_counter() - started < 3.0
    assert result.output is None
    assert outcomes(result) == ["timeout", "timeout"]
    assert "timed out after 0.2 s" in (result.error or "")


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_then_success(kind, make, server: LoopbackServer):
    server.enqueue_fault("timeout", delay_s=5)
    server.enqueue(GOOD)
    result = ask(make(kind, timeout_s=0.2))
    assert result.ok and outcomes(result) == ["timeout", "ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_connection_refused_names_the_url(kind):
    url = refused_url()
    result = ask(provider_for(kind, url, fast_options(max_retries=1)))
    assert result.output is None
    assert outcomes(result) == ["connection_error", "connection_error"]
    port = url.rsplit(":", 1)[1]
    assert "cannot connect" in (result.error or "") and f"127.0.0.1:{port}" in (result.error or "")


@pytest.mark.parametrize("kind", KINDS)
def test_dropped_connection_is_retried(kind, make, server: LoopbackServer):
    server.enqueue_fault("disconnect")
    server.enqueue(GOOD)
    result = ask(make(kind))
    assert result.ok and outcomes(result) == ["connection_error", "ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_client_errors_are_not_retried(kind, make, server: LoopbackServer):
    server.enqueue_fault("status", status=400, body="bad request: no such parameter")
    result = ask(make(kind))
    assert result.output is None and outcomes(result) == ["error"]
    assert "HTTP 400" in (result.error or "")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_api_key_never_leaks(kind, make, server: LoopbackServer):
    key = OPENAI_KEY if kind == "openai" else ANTHROPIC_KEY
    server.enqueue_fault("status", status=401, body=f"invalid key {key}")
    provider = make(kind)
    text = repr(provider) + repr(provider.options)
    result = ask(provider)
    assert result.output is None and outcomes(result) == ["error"]
    hint = "OPENAI_API_KEY" if kind == "openai" else "ANTHROPIC_API_KEY"
    assert f"check {hint}" in (result.error or "")
    assert "invalid key ***" in (result.attempts[0].response or "")
    text += repr(result) + str(result.error)
    assert key not in text
    (sent,) = server.chat_requests()
    assert key not in sent.raw  # only in the auth header, never in the body
    assert key in (sent.headers.get("authorization", "") + sent.headers.get("x-api-key", ""))


@pytest.mark.parametrize("kind", KINDS)
def test_concurrency_is_limited_per_provider(kind, server: LoopbackServer):
    server.latency_s = 0.1
    server.responder = lambda body: GOOD
    provider = provider_for(kind, server.url, fast_options(max_concurrency=2))

    async def go() -> list[ModelResult]:
        try:
            return await asyncio.gather(*(provider.complete(tiny_request()) for _ in range(6)))
        finally:
            await provider.aclose()

    results = asyncio.run(go())
    assert all(r.ok for r in results)
    assert server.max_in_flight == 2


def test_openai_json_schema_mode(server: LoopbackServer):
    server.enqueue(GOOD)
    provider = OpenAIProvider(
        "gpt-4o-mini", fast_options(), api_key="k", base_url=server.url + "/v1", mode="json_schema"
    )
    result = ask(provider)
    assert result.ok
    (sent,) = server.chat_requests()
    assert sent.body["response_format"]["type"] == "json_schema"
    assert "tools" not in sent.body
    # A compatible server gets max_tokens; api.openai.com would get max_completion_tokens.
    assert sent.body["max_tokens"] == 1024


def test_openai_md_json_mode_reads_fenced_json(server: LoopbackServer):
    server.enqueue(GOOD)
    provider = OpenAIProvider("m", fast_options(), base_url=server.url + "/v1", mode="md_json")
    result = ask(provider)
    assert result.ok and result.output == Tiny(**GOOD)
    assert "json_schema" in server.chat_requests()[0].raw  # the schema went into the prompt
