"""`openai:` models: the OpenAI API or any OpenAI-compatible server (vLLM, SGLang, LM Studio...).

Structured output goes through instructor over the Chat Completions API. The instructor mode is a
constructor option:

- `"tools"` (default): a forced function call; what OpenAI and most compatible servers do best.
- `"json_schema"`: `response_format={"type": "json_schema", ...}`; for servers with guided
  decoding but weak tool calling (vLLM, SGLang, Ollama's /v1).
- `"md_json"`: the schema in the prompt and JSON read from the reply text; for servers that
  support neither (slower: the schema is rendered into every request).

Images go as `image_url` content parts holding `data:image/png;base64,...` URLs, which every
compatible vision server accepts. `OPENAI_API_KEY` and `OPENAI_BASE_URL` are read here, in the
constructor, unless `api_key` / `base_url` are passed. A server other than api.openai.com may run
without a key.
"""

from __future__ import annotations

import os
import time
from typing import Any

import instructor
import openai

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

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}
OPENAI_HOST = "api.openai.com"
# Placeholder key for keyless OpenAI-compatible servers (the SDK insists on some key).
NO_KEY = "no-key"


def _describe(response: Any) -> tuple[str | None, int, int]:
    """Raw output text and token counts of one ChatCompletion."""
    usage = response.usage
    input_tokens = (usage.prompt_tokens or 0) if usage else 0
    output_tokens = (usage.completion_tokens or 0) if usage else 0
    if not response.choices:
        return None, input_tokens, output_tokens
    message = response.choices[0].message
    if message.tool_calls:
        function = getattr(message.tool_calls[0], "function", None)
        return getattr(function, "arguments", None), input_tokens, output_tokens
    return message.content, input_tokens, output_tokens


class OpenAIProvider(Provider):
    """Chat Completions with images, validated and re-asked by instructor."""

    def __init__(
        self,
        model: str,
        options: ProviderOptions | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        mode: str = "tools",
    ) -> None:
        super().__init__(f"openai:{model}", options)
        if mode not in MODES:
            raise ConfigError(f"unknown OpenAI mode {mode!r}: use one of {', '.join(MODES)}")
        self.model = model
        self.mode = mode
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        official = base_url is None or OPENAI_HOST in base_url
        if api_key is None and official:
            raise ConfigError("no API key: set OPENAI_API_KEY or pass --describers builtin")
        self._secrets = (api_key,) if api_key else ()
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=self.options.timeout_s,
            max_retries=0,  # we retry, so that every attempt is seen and recorded
        )
        self.base_url = str(self._client.base_url).rstrip("/")
        self._url = self.base_url + "/chat/completions"
        # OpenAI's newer models only take max_completion_tokens; compatible servers know max_tokens.
        self._max_tokens_key = "max_completion_tokens" if official else "max_tokens"
        self._runner = InstructorRunner(instructor.Provider.OPENAI, MODES[mode])

    def _messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] | str = request.prompt
        if request.images:
            content = []
            for image in request.images:
                if image.caption:
                    content.append({"type": "text", "text": image.caption})
                content.append({"type": "image_url", "image_url": {"url": image.data_url}})
            content.append({"type": "text", "text": request.prompt})
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": content})
        return messages

    def _classify(self, exc: Exception) -> Failure | None:
        request = getattr(exc, "request", None)
        url = str(request.url) if request is not None else self._url
        if isinstance(exc, openai.APITimeoutError):
            message = f"timed out after {self.options.timeout_s:g} s waiting for {url}"
            return Failure("timeout", message, True)
        if isinstance(exc, openai.APIConnectionError):
            detail = exc.__cause__ or exc
            return Failure("connection_error", f"cannot connect to {url}: {detail}", True)
        if isinstance(exc, openai.APIStatusError):
            response = exc.response
            return failure_from_status(
                response.status_code, url, response.text, response.headers, "OPENAI_API_KEY"
            )
        if isinstance(exc, openai.OpenAIError):
            return Failure("error", f"{type(exc).__name__} from {url}: {exc}", False)
        return None

    async def complete(self, request: ModelRequest) -> ModelResult:
        started = time.perf_counter()
        log = AttemptLog(self._secrets)
        create = self._client.chat.completions.create

        async def send(**kwargs: Any) -> Any:
            return await send_with_retries(
                lambda: create(**kwargs),
                classify=self._classify,
                describe=_describe,
                options=self.options,
                semaphore=self.semaphore,
                log=log,
            )

        kwargs = {
            "model": self.model,
            "messages": self._messages(request),
            "temperature": request.temperature,
            self._max_tokens_key: request.max_tokens,
        }
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
        return f"OpenAIProvider(spec={self.spec!r}, base_url={self.base_url!r}, mode={self.mode!r})"
