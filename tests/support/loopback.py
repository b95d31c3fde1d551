"""Loopback HTTP servers speaking the OpenAI, Anthropic and Ollama APIs, for tests and benchmarks.

One aiohttp server on 127.0.0.1 (a free port, its own event loop in a background thread) answers
all three APIs, so the real SDK clients can be pointed at it:

- `POST /v1/chat/completions` (OpenAI): a tool call when the request has `tools`, else content
  (fenced as a ```json block when neither tools nor `response_format` were sent);
- `POST /v1/messages` (Anthropic): a `tool_use` block (text when no tools were sent);
- `POST /api/chat` (Ollama): `message.content` JSON, `prompt_eval_count` / `eval_count`;
- `POST /api/show`, `GET /api/tags` (Ollama): from `ollama_models` (name -> capabilities);
  statuses queued in `show_statuses` make the next lookups fail.

Chat answers are scripted: `enqueue(obj)` queues an answer, `enqueue_fault(kind, ...)` queues a
fault, and when the queue is empty `responder(request_json) -> obj` answers (or HTTP 418 says that
nothing was scripted). Every request is logged in `requests`. Handlers are async, so with
`latency_s` set the server still serves many requests at once.

    with LoopbackServer() as server:
        server.enqueue({"label": "glioma"})
        client = AsyncOpenAI(base_url=server.openai_base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULTS = (
    "invalid_json",  # the answer is not JSON
    "schema_violation",  # valid JSON that does not fit (`payload=`, default {"unexpected": 1})
    "truncated",  # stopped at the token limit (finish_reason / stop_reason / done_reason)
    "429",  # rate limited, with Retry-After (`retry_after=` seconds, `http_date=True`)
    "500",
    "503",
    "status",  # any status (`status=`, `body=`)
    "timeout",  # sleeps `delay_s` (default 30) before answering: longer than the client waits
    "disconnect",  # closes the connection without answering
)
INVALID_JSON = '{"label": "glioma", oops'
DEFAULT_MODELS = {"qwen2.5vl:7b": ["completion", "vision"], "llama3.2:3b": ["completion", "tools"]}


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: str


@dataclass
class Scripted:
    kind: str  # "ok" or one of FAULTS
    payload: Any = None
    params: dict[str, Any] = field(default_factory=dict)


def refused_url() -> str:
    """A loopback URL with nothing listening (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class LoopbackServer:
    """A scripted OpenAI / Anthropic / Ollama server on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        responder: Callable[[Any], Any] | None = None,
        latency_s: float = 0.0,
        usage: tuple[int, int] = (11, 7),
        ollama_models: dict[str, list[str] | None] | None = None,
        openai_models: list[str] | None = None,
    ) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.usage = usage
        self.ollama_models = dict(DEFAULT_MODELS if ollama_models is None else ollama_models)
        # Models GET /v1/models lists; None: the route is absent (404), as on many servers.
        self.openai_models = openai_models
        self.requests: list[ReceivedRequest] = []
        self.show_statuses: collections.deque[int] = collections.deque()  # next /api/show fails
        self.in_flight = 0  # chat requests being answered now, and the most at once
        self.max_in_flight = 0
        self.port = 0
        self._queue: collections.deque[Scripted] = collections.deque()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def ollama_host(self) -> str:
        return self.url

    # -- scripting ---------------------------------------------------------------------------
    def enqueue(
        self, obj: Any, *, input_tokens: int | None = None, output_tokens: int | None = None
    ):
        """Queue one chat answer: `obj` as the tool call / JSON content."""
        params = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        self._queue.append(Scripted("ok", obj, params))

    def enqueue_fault(self, kind: str, **params: Any) -> None:
        """Queue one fault (see FAULTS) for the next chat request."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: use one of {', '.join(FAULTS)}")
        self._queue.append(Scripted(kind, params.pop("payload", None), params))

    def chat_requests(self) -> list[ReceivedRequest]:
        chat_paths = ("/v1/chat/completions", "/v1/messages", "/api/chat")
        return [r for r in self.requests if r.path in chat_paths]

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            cleanup = self._runner.cleanup()
            asyncio.run_coroutine_threadsafe(cleanup, self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/api/chat", self._ollama_chat)
        app.router.add_post("/api/show", self._ollama_show)
        app.router.add_get("/api/tags", self._ollama_tags)
        app.router.add_get("/v1/models", self._openai_models)
        # handler_cancellation: a client that gives up (timeout fault) cancels the sleeping handler.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.2
        )
        await self._runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()

    # -- shared machinery --------------------------------------------------------------------
    async def _receive(self, request: web.Request) -> ReceivedRequest:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        received = ReceivedRequest(
            request.method,
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
            raw,
        )
        self.requests.append(received)
        return received

    def _next(self, body: Any) -> Scripted:
        if self._queue:
            return self._queue.popleft()
        if self.responder is not None:
            return Scripted("ok", self.responder(body))
        return Scripted("status", None, {"status": 418, "body": "loopback: nothing scripted"})

    async def _script(self, request: web.Request, error_body: Callable[[int, str], Any]):
        """(received, scripted answer) or an error response for a fault."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, error_body)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, error_body: Callable[[int, str], Any]):
        received = await self._receive(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        item = self._next(received.body)
        kind = item.kind
        if kind == "timeout":
            await asyncio.sleep(item.params.get("delay_s", 30.0))
            return received, Scripted("ok", item.payload or {})
        if kind == "disconnect":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the request quietly
        if kind in ("429", "500", "503", "status"):
            status = int(item.params.get("status", 0)) or int(kind)
            message = item.params.get("body", f"loopback fault {status}")
            headers = {}
            if status == 429:
                retry_after = float(item.params.get("retry_after", 1.0))
                headers["Retry-After"] = (
                    email.utils.formatdate(time.time() + retry_after, usegmt=True)
                    if item.params.get("http_date")
                    else f"{retry_after:g}"
                )
            return received, web.json_response(
                error_body(status, message), status=status, headers=headers
            )
        if kind == "schema_violation" and item.payload is None:
            item.payload = {"unexpected": 1}
        return received, item

    def _usage(self, item: Scripted) -> tuple[int, int]:
        in_tok = item.params.get("input_tokens")
        out_tok = item.params.get("output_tokens")
        return (
            self.usage[0] if in_tok is None else in_tok,
            self.usage[1] if out_tok is None else out_tok,
        )

    @staticmethod
    def _text(item: Scripted) -> str:
        return INVALID_JSON if item.kind == "invalid_json" else json.dumps(item.payload)

    # -- OpenAI ------------------------------------------------------------------------------
    def _openai_answer(self, item: Scripted, body: dict, n: int) -> tuple[dict[str, Any], str]:
        """The assistant message and finish reason of a scripted chat completion."""
        text = self._text(item)
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message["tool_calls"] = [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": text},
                }
            ]
            finish = "tool_calls"
        else:
            fenced = "response_format" not in body and item.kind != "invalid_json"
            message["content"] = f"```json\n{text}\n```" if fenced else text
            finish = "stop"
        if item.kind == "truncated":
            finish = "length"
        return message, finish

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        def error(status: int, message: str) -> Any:
            return {"error": {"message": message, "type": "loopback_error", "code": str(status)}}

        received, item = await self._script(request, error)
        if isinstance(item, web.StreamResponse):
            return item
        body = received.body or {}
        n = next(self._ids)
        message, finish = self._openai_answer(item, body, n)
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "id": f"chatcmpl-loopback-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "loopback"),
                "choices": [
                    {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                ],
                "usage": {
                    "prompt_tokens": in_tok,
                    "completion_tokens": out_tok,
                    "total_tokens": in_tok + out_tok,
                },
            }
        )

    async def _openai_models(self, request: web.Request) -> web.StreamResponse:
        await self._receive(request)
        if self.openai_models is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "loopback"}
            for name in self.openai_models
        ]
        return web.json_response({"object": "list", "data": data})

    # -- Anthropic ---------------------------------------------------------------------------
    def _anthropic_answer(
        self, item: Scripted, body: dict, n: int
    ) -> tuple[list[dict[str, Any]], str]:
        """The content blocks and stop reason of a scripted Messages reply."""
        if body.get("tools") and item.kind != "invalid_json":
            name = body["tools"][0]["name"]
            content = [
                {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": item.payload}
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": self._text(item)}]
            stop = "end_turn"
        if item.kind == "truncated":
            stop = "max_tokens"
        return content, stop

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        def error(status: int, message: str) -> Any:
            return {"type": "error", "error": {"type": "loopback_error", "message": message}}

        received, item = await self._script(request, error)
        if isinstance(item, web.StreamResponse):
            return item
        body = received.body or {}
        n = next(self._ids)
        content, stop = self._anthropic_answer(item, body, n)
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "id": f"msg_loopback_{n}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "loopback"),
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": in_tok, "output_tokens": out_tok},
            }
        )

    # -- Ollama ------------------------------------------------------------------------------
    def _ollama_answer(self, item: Scripted) -> str:
        """The message content of a scripted Ollama chat reply."""
        return self._text(item)

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        received, item = await self._script(request, lambda status, message: {"error": message})
        if isinstance(item, web.StreamResponse):
            return item
        body = received.body or {}
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "model": body.get("model", "loopback"),
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": self._ollama_answer(item)},
                "done": True,
                "done_reason": "length" if item.kind == "truncated" else "stop",
                "total_duration": 1000,
                "prompt_eval_count": in_tok,
                "eval_count": out_tok,
            }
        )

    async def _ollama_show(self, request: web.Request) -> web.StreamResponse:
        received = await self._receive(request)
        if self.show_statuses:
            status = self.show_statuses.popleft()
            return web.json_response({"error": f"loopback fault {status}"}, status=status)
        name = (received.body or {}).get("model", "")
        if name not in self.ollama_models:
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        reply: dict[str, Any] = {
            "modelfile": "",
            "template": "",
            "details": {"format": "gguf", "family": "loopback", "parameter_size": "7B"},
            "model_info": {},
        }
        capabilities = self.ollama_models[name]
        if capabilities is not None:  # None: an old server that reports no capabilities
            reply["capabilities"] = capabilities
        return web.json_response(reply)

    async def _ollama_tags(self, request: web.Request) -> web.StreamResponse:
        await self._receive(request)
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": 1,
                "digest": "0" * 64,
            }
            for name in self.ollama_models
        ]
        return web.json_response({"models": models})
