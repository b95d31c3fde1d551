"""Free-text answers from `openai:`, `anthropic:` and `ollama:` models, for `bench run`.

The annotation providers (agents/providers) ask for structured output; a benchmark must see what
a model says unprompted by a schema, so these adapters send a plain chat request and keep the
reply text. Everything else is the providers' own, imported, not copied: each provider's
constructor (its SDK client, environment variables `OPENAI_API_KEY` / `OPENAI_BASE_URL`,
`ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL`, `OLLAMA_HOST`, key checks), its error classifier, its
concurrency semaphore, `send_with_retries` (backoff honouring Retry-After) and the price table.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from neuroonco.agents.providers.base import ProviderOptions
from neuroonco.agents.providers.pricing import cost_usd
from neuroonco.agents.providers.registry import make_provider, parse_spec
from neuroonco.agents.providers.retry import AttemptLog, TransportFailed, send_with_retries
from neuroonco.benchmark.images import ImageProblem, png_bytes
from neuroonco.benchmark.models import BenchAnswer, BenchRequest
from neuroonco.errors import ConfigError

PREFIXES = ("openai", "anthropic", "ollama")


def _openai_text(response: Any) -> tuple[str | None, int, int]:
    usage = response.usage
    tokens = ((usage.prompt_tokens or 0), (usage.completion_tokens or 0)) if usage else (0, 0)
    text = response.choices[0].message.content if response.choices else None
    return text, *tokens


def _anthropic_text(response: Any) -> tuple[str | None, int, int]:
    usage = response.usage
    tokens = ((usage.input_tokens or 0), (usage.output_tokens or 0)) if usage else (0, 0)
    texts = [b.text for b in response.content or () if b.type == "text"]
    return "\n".join(texts) or None, *tokens


def _ollama_text(response: Any) -> tuple[str | None, int, int]:
    return response.message.content, response.prompt_eval_count or 0, response.eval_count or 0


class TextModel:
    """One provider asked for free text; failures come back as `BenchAnswer.error`."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        self.kind, self.model = parse_spec(spec)
        self.spec = f"{self.kind}:{self.model}"
        provider_options = ProviderOptions(
            timeout_s=float(options.get("timeout_s", 120.0)),
            max_retries=int(options.get("max_retries", 4)),
            max_concurrency=int(options.get("concurrency", 8)),
        )
        try:
            self.provider: Any = make_provider(self.spec, provider_options)
        except ConfigError as exc:
            # The providers' hints name the annotate options; bench run has --model.
            hint = str(exc).replace("--describers builtin", "--model baseline:prior")
            raise ConfigError(hint) from None

    async def _images(self, request: BenchRequest) -> list[str]:
        pngs = [await asyncio.to_thread(png_bytes, path) for path in request.images]
        return [base64.b64encode(png).decode("ascii") for png in pngs]

    def _call(self, request: BenchRequest, images: list[str]) -> tuple[Any, Any]:
        """(a no-argument coroutine function sending the request, the reply reader)."""
        p = self.provider
        if self.kind == "openai":
            content: Any = request.prompt
            if images:
                parts = [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}
                    for b64 in images
                ]
                content = [*parts, {"type": "text", "text": request.prompt}]
            kwargs = {
                "model": self.model,
                "messages": [{"role": "user", "content": content}],
                "temperature": request.temperature,
                p._max_tokens_key: request.max_tokens,
            }
            return (lambda: p._client.chat.completions.create(**kwargs)), _openai_text
        if self.kind == "anthropic":
            blocks: list[dict[str, Any]] = [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": b},
                }
                for b in images
            ]
            blocks.append({"type": "text", "text": request.prompt})
            kwargs = {
                "model": self.model,
                "messages": [{"role": "user", "content": blocks}],
                "max_tokens": request.max_tokens,
            }
            return (lambda: p._client.messages.create(**kwargs)), _anthropic_text
        message: dict[str, Any] = {"role": "user", "content": request.prompt}
        if images:
            message["images"] = images
        settings = {"temperature": request.temperature, "num_predict": request.max_tokens}
        return (
            lambda: p._client.chat(model=self.model, messages=[message], options=settings)
        ), _ollama_text

    async def _check_ollama(self, request: BenchRequest, log: AttemptLog) -> None:
        # The provider looks the model up once (pulled? vision?) and raises ConfigError saying
        # how to `ollama pull` one: a setup problem stops the run rather than failing each row.
        await self.provider._check_model(log)
        capabilities = self.provider._capabilities
        if request.images and capabilities is not None and "vision" not in capabilities:
            raise ConfigError(
                f"model {self.model} on OLLAMA_HOST ({self.provider.host}) cannot read images: "
                "use a vision model, e.g. `ollama pull qwen2.5vl:7b`"
            )

    async def answer(self, request: BenchRequest) -> BenchAnswer:
        started = time.perf_counter()
        log = AttemptLog(getattr(self.provider, "_secrets", ()))
        try:
            images = await self._images(request)
        except (ImageProblem, OSError) as exc:
            return BenchAnswer(text="", error=str(exc))
        try:
            if self.kind == "ollama":
                await self._check_ollama(request, log)
            send, read = self._call(request, images)
            response = await send_with_retries(
                send,
                classify=self.provider._classify,
                describe=read,
                options=self.provider.options,
                semaphore=self.provider.semaphore,
                log=log,
            )
            text = read(response)[0] or ""
            error = None
        except TransportFailed as exc:
            text, error = "", exc.message
        input_tokens = sum(r.input_tokens for r in log.records)
        output_tokens = sum(r.output_tokens for r in log.records)
        return BenchAnswer(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            error=error,
            cost_usd=cost_usd(self.spec, input_tokens, output_tokens),
            extra={"attempts": len(log.records)},
        )

    async def aclose(self) -> None:
        await self.provider.aclose()


def make_text_model(spec: str, options: dict[str, Any]) -> TextModel:
    """Factory for `openai:`, `anthropic:` and `ollama:` specs."""
    return TextModel(spec, options)
