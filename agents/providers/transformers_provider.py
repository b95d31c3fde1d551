"""`transformers:PATH[?adapter=DIR]` models: a local (fine-tuned) VLM in the describer panel.

Spec options after `?`: `adapter=DIR` (a LoRA adapter of `neuroonco finetune`), `batch_size=N`
(calls batched into one generate, default 8), `max_new_tokens=N` (a cap below the request's).

The model runs in this process through `neuroonco.finetune.inference` (the `finetune` extra):
concurrent calls are batched into one greedy `generate`, on the GPU when there is one. Structured
output is handled as for Ollama: the prompt carries the response model's JSON schema, the answer
is validated here with pydantic (with the request's validation context) and re-asked with the
validation error, each answer recorded as an attempt. `tiny` (`transformers:tiny`) is the
randomly initialised model of `neuroonco finetune --base-model tiny`: a dry run of the wiring.
"""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from neuroonco.agents.providers.base import (
    ModelRequest,
    ModelResult,
    Provider,
    ProviderOptions,
    build_result,
)
from neuroonco.agents.providers.retry import AttemptLog
from neuroonco.errors import ConfigError

SCHEMA_NOTE = "Answer with one JSON object only, matching this JSON schema:\n{schema}"
REASK = "Your JSON did not validate:\n{error}\nReply again with corrected JSON only."
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@functools.lru_cache(maxsize=64)
def _schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), separators=(",", ":"))


def json_text(text: str) -> str:
    """The JSON in an answer: a fenced block, else from the first '{' to the last '}'."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


class TransformersProvider(Provider):
    """A local transformers VLM (optionally with a LoRA adapter), batched across calls."""

    def __init__(
        self,
        model: str,
        options: ProviderOptions | None = None,
        *,
        adapter: str | Path | None = None,
        batch_size: int = 8,
        vlm: Any = None,
    ) -> None:
        from neuroonco.finetune.inference import parse_model_spec

        base, extra = parse_model_spec(model)
        adapter = adapter or extra.get("adapter")
        self.adapter = Path(adapter) if adapter else None
        spec = f"transformers:{base}" + (f"?adapter={adapter}" if adapter else "")
        super().__init__(spec, options)
        self.base = base
        self.batch_size = int(extra.get("batch_size", batch_size))
        # A cap on generated tokens below the request's (a small local model rambles).
        self.max_new_tokens = int(extra["max_new_tokens"]) if "max_new_tokens" in extra else None
        self._vlm = vlm
        self._batcher: Any = None

    def _ensure(self) -> Any:
        if self._batcher is None:
            try:
                from neuroonco.finetune.inference import AsyncBatcher, shared_vlm
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ConfigError(
                    f"{self.spec} needs the finetune extra: pip install 'neuroonco[finetune]'"
                ) from exc
            vlm = self._vlm or shared_vlm(self.base, self.adapter)
            self._batcher = AsyncBatcher(vlm, self.batch_size)
        return self._batcher

    def _messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for i, image in enumerate(request.images, 1):
            if image.caption:
                parts.append({"type": "text", "text": f"Image {i}: {image.caption}\n"})
            parts.append({"type": "image"})
        schema = SCHEMA_NOTE.format(schema=_schema_text(request.response_model))
        parts.append({"type": "text", "text": f"{request.prompt}\n\n{schema}"})
        messages: list[dict[str, Any]] = [{"role": "user", "content": parts}]
        if request.system:
            messages.insert(
                0, {"role": "system", "content": [{"type": "text", "text": request.system}]}
            )
        return messages

    async def complete(self, request: ModelRequest) -> ModelResult:
        from neuroonco.finetune.inference import Chat

        started = time.perf_counter()
        log = AttemptLog()
        result = functools.partial(build_result, self.spec, log.records, started=started)
        batcher = self._ensure()
        messages = self._messages(request)
        images = [image.png for image in request.images]
        limit = min(request.max_tokens, self.max_new_tokens or request.max_tokens)
        for _ in range(self.options.validation_retries + 1):
            try:
                async with self.semaphore:
                    answer = await batcher.generate(Chat(messages, images, limit))
            except Exception as exc:  # a model failure is a result, never a crash of the run
                return result(output=None, response=None, error=f"{type(exc).__name__}: {exc}")
            log.ok(answer.text, answer.input_tokens, answer.output_tokens, answer.latency_ms)
            if not answer.finished:
                error = f"output truncated at max_tokens={limit}"
                log.mark_invalid(error)
                return result(output=None, response=answer.text, error=error)
            try:
                output = request.response_model.model_validate_json(
                    json_text(answer.text), context=request.validation_context
                )
            except ValidationError as exc:
                log.mark_invalid(str(exc))
                reask = {
                    "role": "user",
                    "content": [{"type": "text", "text": REASK.format(error=exc)}],
                }
                assistant = {
                    "role": "assistant",
                    "content": [{"type": "text", "text": answer.text}],
                }
                messages = [*messages, assistant, reask]
                continue
            return result(output=output, response=answer.text, error=None)
        answers = sum(1 for r in log.records if r.outcome == "invalid_output")
        error = f"invalid output after {answers} answers: {log.records[-1].error}"
        return result(output=None, response=log.last_response, error=error)
