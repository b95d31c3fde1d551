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
from typing import Any

import anthropic
import instructor
from anthropic.types import Message

from neuroonco.agents.providers.base import (
    ModelRequest,
    ModelResult,
    Provider,
    ProviderOptions,
)
from neuroonco.agents.providers.retry import Failure, InstructorRunner
from neuroonco.agents.providers.sdk_calls import (
    SdkCall,
    SdkErrors,
    classify_sdk_error,
    complete_with_instructor,
    setup_problem,
)
from neuroonco.errors import ConfigError

ANTHROPIC_HOST = "api.anthropic.com"
NO_KEY = "no-key"


_ERRORS = SdkErrors(
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    status=anthropic.APIStatusError,
    authentication=anthropic.AuthenticationError,
    permission=anthropic.PermissionDeniedError,
    base=anthropic.AnthropicError,
    key_env="ANTHROPIC_API_KEY",
)


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
        except (anthropic.APIConnectionError, anthropic.APIStatusError) as exc:
            problem = setup_problem(exc, _ERRORS, self.spec, self.base_url, where)
            if problem is not None:
                raise problem from None

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
        return classify_sdk_error(exc, _ERRORS, self._url, self.options.timeout_s)

    async def _create(self, **body: Any) -> Message:
        """POST /v1/messages with ``body`` as it is: `messages.create` checks and reshapes its
        arguments first, which our plain-JSON bodies do not need (the same post, headers and
        response type)."""
        return await self._client.post("/v1/messages", body=body, cast_to=Message)

    async def complete(self, request: ModelRequest) -> ModelResult:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            "max_tokens": request.max_tokens,
        }
        if request.system:
            body["system"] = request.system
        call = SdkCall(
            self.spec, self._create, self._classify, _describe, self._runner, self._secrets
        )
        return await complete_with_instructor(
            call, request, body, options=self.options, semaphore=self.semaphore
        )

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"AnthropicProvider(spec={self.spec!r}, base_url={self.base_url!r})"
