"""`anthropic:` models through the Messages API, structured by instructor's Anthropic tools mode.

Images go as native `image` content blocks with a base64 PNG source, before the prompt text (as
Anthropic recommends). `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL` are read here, in the
constructor, unless `api_key` / `base_url` are passed; the key is always handed to the SDK
explicitly, so it never falls back to credential profiles on disk. The Messages API of this SDK
generation takes no sampling parameters, so `ModelRequest.temperature` is not sent.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import anthropic
import instructor
from anthropic.types import Message

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
    InstructorRunner,
    failure_from_status,
    send_with_retries,
)
from neuroonco.errors import ConfigError

ANTHROPIC_HOST = "api.anthropic.com"
NO_KEY = "no-key"


def _describe(response: Any) -> tuple[str | None, int, int]:
    """Raw output text (tool input as JSON, or text) and token counts of one Message."""
    usage = response.usage
    input_tokens = output_tokens = 0
    if usage is not None:
        input_tokens = (
            (usage.input_tokens or 0)
            + (getattr(usage, "cache_creation_input_tokens", None) or 0)
            + (getattr(usage, "cache_read_input_tokens", None) or 0)
        )
        output_tokens = usage.output_tokens or 0
    texts = []
    for block in response.content or ():
        if block.type == "tool_use":
            texts.append(json.dumps(block.input))
        elif block.type == "text":
            texts.append(block.text)
    return "\n".join(texts) or None, input_tokens, output_tokens


class AnthropicProvider(Provider):
    """Claude models with images, validated and re-asked by instructor."""

    def __init__(
        self,
        model: str,
        options: ProviderOptions | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(f"anthropic:{model}", options)
        self.model = model
        base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        official = base_url is None or ANTHROPIC_HOST in base_url
        if api_key is None and official:
            raise ConfigError("no API key: set ANTHROPIC_API_KEY or pass --describers builtin")
        self._secrets = (api_key,) if api_key else ()
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=self.options.timeout_s,
            max_retries=0,  # we retry, so that every attempt is seen and recorded
        )
        self.base_url = str(self._client.base_url).rstrip("/")
        self._url = self.base_url + "/v1/messages"
        self._runner = InstructorRunner(instructor.Provider.ANTHROPIC, instructor.Mode.TOOLS)
        self._official = official

    @property
    def cache_identity(self) -> str:
        return f"{self.spec} @{self.base_url}"

    async def check(self, *, images: bool) -> None:
        """The host answers and the key is accepted (a model listing; 404 counts as reachable)."""
        client = self._client.with_options(timeout=min(self.options.timeout_s, 15.0))
        where = "ANTHROPIC_BASE_URL" if not self._official else "the Anthropic API"
        try:
            await client.models.list(limit=1)
        except anthropic.AuthenticationError:
            raise ConfigError(
                f"{self.spec}: {self.base_url} refused the API key (HTTP 401): "
                "check ANTHROPIC_API_KEY"
            ) from None
        except anthropic.PermissionDeniedError:
            raise ConfigError(
                f"{self.spec}: {self.base_url} denied access (HTTP 403): check ANTHROPIC_API_KEY"
            ) from None
        except anthropic.APIConnectionError as exc:
            raise ConfigError(
                f"{self.spec}: cannot reach {self.base_url} ({exc.__cause__ or exc}): check "
                f"{where} and that the server is running"
            ) from None
        except anthropic.APIStatusError as exc:
            if exc.status_code >= 500:
                raise ConfigError(
                    f"{self.spec}: {self.base_url} answers HTTP {exc.status_code}: check {where}"
                ) from None

    def _messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] | str = request.prompt
        if request.images:
            content = []
            for image in request.images:
                if image.caption:
                    content.append({"type": "text", "text": image.caption})
                source = {"type": "base64", "media_type": "image/png", "data": image.base64}
                content.append({"type": "image", "source": source})
            content.append({"type": "text", "text": request.prompt})
        return [{"role": "user", "content": content}]

    def _classify(self, exc: Exception) -> Failure | None:
        request = getattr(exc, "request", None)
        url = str(request.url) if request is not None else self._url
        if isinstance(exc, anthropic.APITimeoutError):
            message = f"timed out after {self.options.timeout_s:g} s waiting for {url}"
            return Failure("timeout", message, True)
        if isinstance(exc, anthropic.APIConnectionError):
            detail = exc.__cause__ or exc
            return Failure("connection_error", f"cannot connect to {url}: {detail}", True)
        if isinstance(exc, anthropic.APIStatusError):
            response = exc.response
            return failure_from_status(
                response.status_code, url, response.text, response.headers, "ANTHROPIC_API_KEY"
            )
        if isinstance(exc, anthropic.AnthropicError):
            return Failure("error", f"{type(exc).__name__} from {url}: {exc}", False)
        return None

    async def _create(self, **body: Any) -> Message:
        """POST /v1/messages with ``body`` as it is: `messages.create` checks and reshapes its
        arguments first, which our plain-JSON bodies do not need (the same post, headers and
        response type)."""
        return await self._client.post("/v1/messages", body=body, cast_to=Message)

    async def complete(self, request: ModelRequest) -> ModelResult:
        started = time.perf_counter()
        log = AttemptLog(self._secrets)
        create = self._create

        async def send(**kwargs: Any) -> Any:
            return await send_with_retries(
                lambda: create(**kwargs),
                classify=self._classify,
                describe=_describe,
                options=self.options,
                semaphore=self.semaphore,
                log=log,
            )

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            "max_tokens": request.max_tokens,
        }
        if request.system:
            kwargs["system"] = request.system
        output, error = await self._runner.run(
            send, kwargs, request, log, self.options.validation_retries
        )
        return build_result(
            self.spec,
            log.records,
            output=output,
            response=log.last_response,
            error=error,
            started=started,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"AnthropicProvider(spec={self.spec!r}, base_url={self.base_url!r})"
