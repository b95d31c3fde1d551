"""A loopback server whose chat answers are free text, for `bench run` against the real SDKs.

`tests/support/loopback.py` answers as a structured-output server (tool calls, fenced JSON); a
benchmark asks for plain text, so this subclass replies with `responder(api, body) -> str` (or a
queued text) as the message content of each API: OpenAI `choices[0].message.content`, Anthropic
one `text` block, Ollama `message.content`. Faults queued with `enqueue_fault` work as in the
parent (429 with Retry-After, 500, timeout...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.support.loopback import LoopbackServer, Scripted


def prompt_of(body: Any) -> str:
    """The user text of an OpenAI, Anthropic or Ollama chat request."""
    message = (body or {}).get("messages", [{}])[-1]
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def images_of(body: Any) -> int:
    """How many images a chat request carries."""
    message = (body or {}).get("messages", [{}])[-1]
    if "images" in message:
        return len(message["images"])
    content = message.get("content", "")
    if isinstance(content, str):
        return 0
    return sum(1 for part in content if part.get("type") in ("image_url", "image"))


class TextLoopbackServer(LoopbackServer):
    """Answers every chat request with free text (`enqueue("C")` or `text_responder(body)`)."""

    def __init__(
        self, *, text_responder: Callable[[Any], str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(responder=text_responder, **kwargs)

    def _text_of(self, item: Scripted) -> str:
        return item.payload if isinstance(item.payload, str) else str(item.payload)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        def error(status: int, message: str) -> Any:
            return {"error": {"message": message, "type": "loopback_error", "code": str(status)}}

        received, item = await self._script(request, error)
        if isinstance(item, web.StreamResponse):
            return item
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "id": "chatcmpl-text",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": (received.body or {}).get("model", "loopback"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self._text_of(item)},
                        "finish_reason": "length" if item.kind == "truncated" else "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": in_tok,
                    "completion_tokens": out_tok,
                    "total_tokens": in_tok + out_tok,
                },
            }
        )

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        def error(status: int, message: str) -> Any:
            return {"type": "error", "error": {"type": "loopback_error", "message": message}}

        received, item = await self._script(request, error)
        if isinstance(item, web.StreamResponse):
            return item
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "id": "msg_text",
                "type": "message",
                "role": "assistant",
                "model": (received.body or {}).get("model", "loopback"),
                "content": [{"type": "text", "text": self._text_of(item)}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": in_tok, "output_tokens": out_tok},
            }
        )

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        received, item = await self._script(request, lambda status, message: {"error": message})
        if isinstance(item, web.StreamResponse):
            return item
        in_tok, out_tok = self._usage(item)
        return web.json_response(
            {
                "model": (received.body or {}).get("model", "loopback"),
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": self._text_of(item)},
                "done": True,
                "done_reason": "stop",
                "total_duration": 1000,
                "prompt_eval_count": in_tok,
                "eval_count": out_tok,
            }
        )
