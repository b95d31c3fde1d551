"""The loopback server itself: concurrency under latency, scripting, request log."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from tests.support.loopback import LoopbackServer, refused_url


def test_serves_many_slow_requests_at_once():
    with LoopbackServer(latency_s=0.5, responder=lambda body: {"ok": True}) as server:

        async def go() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
                calls = [client.post("/api/chat", json={"model": "m"}) for _ in range(32)]
                return await asyncio.gather(*calls)

        started = time.perf_counter()
        responses = asyncio.run(go())
        elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses)
    assert server.max_in_flight == 32
    assert elapsed < 1.5  # 32 x 0.5 s served concurrently, not one after another


def test_unscripted_requests_get_418_and_are_logged():
    with LoopbackServer() as server:
        response = httpx.post(server.url + "/v1/chat/completions", json={"model": "m"})
        assert response.status_code == 418
        (received,) = server.chat_requests()
        assert received.body == {"model": "m"} and received.method == "POST"


def test_unknown_fault_is_rejected():
    with LoopbackServer() as server, pytest.raises(ValueError, match="unknown fault"):
        server.enqueue_fault("teapot")


def test_429_carries_retry_after_as_seconds_or_http_date():
    with LoopbackServer() as server:
        server.enqueue_fault("429", retry_after=2)
        server.enqueue_fault("429", retry_after=30, http_date=True)
        first = httpx.post(server.url + "/api/chat", json={})
        second = httpx.post(server.url + "/api/chat", json={})
    assert (first.status_code, first.headers["retry-after"]) == (429, "2")
    assert second.headers["retry-after"].endswith("GMT")


def test_refused_url_has_nothing_listening():
    url = refused_url()
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect((host, int(port)))


def test_tags_lists_models():
    with LoopbackServer(ollama_models={"a:1b": ["completion"]}) as server:
        tags = httpx.get(server.url + "/api/tags").json()
    assert [m["name"] for m in tags["models"]] == ["a:1b"]
