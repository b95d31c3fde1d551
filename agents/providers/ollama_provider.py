"""`ollama:` models through Ollama's native `/api/chat`, with a JSON-schema `format` (not tools).

Vision models on Ollama follow a JSON schema far better than tool calls, so the request carries
`format=<the response model's JSON schema>` and the images as base64 in `images`; the answer is
validated here with pydantic (instructor has no native-Ollama mode) and re-asked with the
validation error. `format` is a grammar only: the model never reads the schema's descriptions,
so the prompt carries a compact field guide (allowed values, when to answer null) in their place.
Before the first call the model is looked up with `/api/show`: a model that is
not pulled, or that cannot see images when images are sent, raises `ConfigError` saying how to
`ollama pull` one. The server is `OLLAMA_HOST` (default http://127.0.0.1:11434), read here.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx
import ollama
from pydantic import BaseModel, ValidationError

from neuroonco.agents.prompts import field_guide
from neuroonco.agents.providers.base import (
    ModelRequest,
    ModelResult,
    Provider,
    ProviderOptions,
    build_result,
)
from neuroonco.agents.providers.retry import (
    AttemptLog,
    Failure,
    TransportFailed,
    failure_from_status,
    send_with_retries,
)
from neuroonco.errors import ConfigError

DEFAULT_HOST = "http://127.0.0.1:11434"
REASK = "Your JSON did not validate:\n{error}\nReply again with corrected JSON only."
_UNCHECKED = object()

# The ollama client drops response headers when it raises, so an httpx response hook keeps the
# last error's headers (for Retry-After) in a context variable: hooks run in the caller's task.
_ERROR_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "ollama_error_headers", default=None
)


async def _keep_error_headers(response: httpx.Response) -> None:
    if response.status_code >= 400:
        _ERROR_HEADERS.set(response.headers)


@functools.lru_cache(maxsize=256)
def _format_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _describe(response: Any) -> tuple[str | None, int, int]:
    return (
        response.message.content,
        response.prompt_eval_count or 0,
        response.eval_count or 0,
    )


class OllamaProvider(Provider):
    """A local (or remote) Ollama server; validation and re-asks done here with pydantic."""

    def __init__(
        self,
        model: str,
        options: ProviderOptions | None = None,
        *,
        host: str | None = None,
        supports_multiple_images: bool = True,
    ) -> None:
        super().__init__(f"ollama:{model}", options)
        self.model = model
        self.host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
        if "://" not in self.host:
            self.host = "http://" + self.host
        self.supports_multiple_images = supports_multiple_images
        self._client = ollama.AsyncClient(
            host=self.host,
            timeout=self.options.timeout_s,
            event_hooks={"response": [_keep_error_headers]},
        )
        self._capabilities: Any = _UNCHECKED
        self._check_lock = asyncio.Lock()

    def _classify(self, exc: Exception) -> Failure | None:
        url = self.host
        if isinstance(exc, ollama.ResponseError):
            return failure_from_status(exc.status_code, url, str(exc.error), _ERROR_HEADERS.get())
        if isinstance(exc, httpx.TimeoutException):
            message = f"timed out after {self.options.timeout_s:g} s waiting for Ollama at {url}"
            return Failure("timeout", message, True)
        if isinstance(exc, (ConnectionError, httpx.TransportError)):
            message = f"cannot connect to Ollama at {url} (is `ollama serve` running?)"
            return Failure("connection_error", message, True)
        return None

    async def _send(self, log: AttemptLog, call: Any, describe: Any = _describe) -> Any:
        async def attempt() -> Any:
            _ERROR_HEADERS.set(None)
            return await call()

        return await send_with_retries(
            attempt,
            classify=self._classify,
            describe=describe,
            options=self.options,
            semaphore=self.semaphore,
            log=log,
        )

    async def _show(self) -> Any:
        try:
            return await self._client.show(self.model)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ConfigError(
                    f"ollama:{self.model} is not pulled on OLLAMA_HOST ({self.host}): "
                    f"run `ollama pull {self.model}`"
                ) from None
            raise

    async def _check_model(self, log: AttemptLog) -> None:
        """Look the model up once (`/api/show`); transport failures land in `log`."""
        if self._capabilities is _UNCHECKED:
            async with self._check_lock:
                if self._capabilities is _UNCHECKED:
                    info = await self._send(log, self._show, lambda _: (None, 0, 0))
                    self._capabilities = info.capabilities
                    log.records.clear()  # the lookup is not a model call

    def _check_vision(self, request: ModelRequest) -> None:
        self._check_vision_of(bool(request.images))

    def _check_vision_of(self, images: bool) -> None:
        capabilities = self._capabilities
        # Older servers report no capabilities: then we cannot tell, and let the call go.
        if images and capabilities is not None and "vision" not in capabilities:
            raise ConfigError(
                f"model {self.model} on OLLAMA_HOST ({self.host}) cannot read images "
                f"(capabilities: {', '.join(capabilities) or 'none'}): use a vision model, "
                "e.g. `ollama pull qwen2.5vl:7b`"
            )

    @property
    def cache_identity(self) -> str:
        return f"{self.spec} @{self.host}"

    async def check(self, *, images: bool) -> None:
        """The server answers, the model is pulled, and it can see images if it will get them."""
        try:
            info = await self._show()
        except ollama.ResponseError as exc:
            raise ConfigError(
                f"{self.spec}: Ollama at {self.host} answers HTTP {exc.status_code} for "
                f"{self.model}: {exc.error}"
            ) from None
        except (ConnectionError, httpx.TransportError):
            raise ConfigError(
                f"{self.spec}: cannot reach Ollama at {self.host}: start `ollama serve` or set "
                "OLLAMA_HOST"
            ) from None
        self._capabilities = info.capabilities
        if images:
            self._check_vision_of(True)

    def _messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        prompt = f"{request.prompt}\n\n{field_guide(request.response_model)}"
        user: dict[str, Any] = {"role": "user", "content": prompt}
        if request.images:
            captions = [
                f"Image {i}: {image.caption}"
                for i, image in enumerate(request.images, 1)
                if image.caption
            ]
            if captions:
                user["content"] = "\n".join([*captions, "", prompt])
            user["images"] = [image.base64 for image in request.images]
        if request.system:
            return [{"role": "system", "content": request.system}, user]
        return [user]

    async def complete(self, request: ModelRequest) -> ModelResult:
        started = time.perf_counter()
        log = AttemptLog()
        result = functools.partial(build_result, self.spec, log.records, started=started)
        try:
            await self._check_model(log)
        except TransportFailed as exc:
            return result(output=None, response=None, error=f"checking model: {exc.message}")
        self._check_vision(request)
        messages = self._messages(request)
        fmt = _format_schema(request.response_model)
        settings: dict[str, Any] = {"num_predict": request.max_tokens}
        if request.temperature is not None:
            settings["temperature"] = request.temperature
        chat = self._client.chat
        for _ in range(self.options.validation_retries + 1):
            try:
                response = await self._send(
                    log,
                    lambda m=messages: chat(
                        model=self.model, messages=m, format=fmt, options=settings
                    ),
                )
            except TransportFailed as exc:
                return result(output=None, response=log.last_response, error=exc.message)
            content = response.message.content or ""
            if response.done_reason == "length":
                error = f"output truncated at max_tokens={request.max_tokens}"
                log.mark_invalid(error)
                return result(output=None, response=content, error=error)
            try:
                output = request.response_model.model_validate_json(
                    content, context=request.validation_context
                )
            except ValidationError as exc:
                log.mark_invalid(str(exc))
                reask = {"role": "user", "content": REASK.format(error=exc)}
                messages = [*messages, {"role": "assistant", "content": content}, reask]
                continue
            return result(output=output, response=content, error=None)
        answers = sum(1 for r in log.records if r.outcome == "invalid_output")
        error = f"invalid output after {answers} answers: {log.records[-1].error}"
        return result(output=None, response=log.last_response, error=error)

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"OllamaProvider(spec={self.spec!r}, host={self.host!r})"
