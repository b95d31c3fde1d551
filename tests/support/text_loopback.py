"""A loopback server whose chat answers are free text, for `bench run` against the real SDKs.

`tests/support/loopback.py` answers as a structured-output server (tool calls, fenced JSON); a
benchmark asks for plain text, so this subclass replies with `responder(api, body) -> str` (or a
queued text) as the message content of each API: OpenAI `choices[0].message.content`, Anthropic
one `text` block, Ollama `message.content`. Faults queued with `enqueue_fault` work as in the
parent (429 with Retry-After, 500, timeout...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

    # The parent's envelopes (ids, usage, finish reasons, faults) with free text as the answer.
    def _openai_answer(self, item: Scripted, body: dict, n: int) -> tuple[dict[str, Any], str]:
        finish = "length" if item.kind == "truncated" else "stop"
        return {"role": "assistant", "content": self._text_of(item)}, finish

    def _anthropic_answer(
        self, item: Scripted, body: dict, n: int
    ) -> tuple[list[dict[str, Any]], str]:
        stop = "max_tokens" if item.kind == "truncated" else "end_turn"
        return [{"type": "text", "text": self._text_of(item)}], stop

    def _ollama_answer(self, item: Scripted) -> str:
        return self._text_of(item)
