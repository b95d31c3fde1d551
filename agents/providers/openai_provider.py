"""`openai:` models: the OpenAI API or any OpenAI-compatible server (vLLM, SGLang, LM Studio...).

Structured output goes through instructor over the Chat Completions API. The instructor mode is a
constructor option:

- `"tools"` (default): a forced function call; what OpenAI and most compatible servers do best.
- `"json_schema"`: `response_format={"type": "json_schema", ...}`; for servers with guided
  decoding but weak tool calling (vLLM, SGLang, Ollama's /v1).
- `"json"`: plain JSON (`response_format={"type": "json_object"}`, the schema in the system
  text); for servers without tool calling or JSON-schema decoding (LM Studio, Ollama's /v1).
- `"md_json"`: the schema in the prompt and JSON read from the reply text; for servers that
  support none of these (slower: the schema is rendered into every request).

`temperature` is not sent to reasoning models (o1/o3/o4..., gpt-5...), which reject it, nor
when `send_temperature=False`.

Images go as `image_url` content parts holding `data:image/png;base64,...` URLs, which every
compatible vision server accepts. `OPENAI_API_KEY` and `OPENAI_BASE_URL` are read here, in the
constructor, unless `api_key` / `base_url` are passed. A server other than api.openai.com may run
without a key.
"""

from __future__ import annotations

import os
import re
from typing import Any

import instructor
import openai
from openai.types.chat import ChatCompletion

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

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "json": instructor.Mode.JSON,
    "md_json": instructor.Mode.MD_JSON,
}
# Reasoning models reject any temperature but the default.
_REASONING = re.compile(r"^(o\d|gpt-5)")
OPENAI_HOST = "api.openai.com"
# Placeholder key for keyless OpenAI-compatible servers (the SDK insists on some key).
NO_KEY = "no-key"
# What `chat.completions.create` passes to the SDK's post: the bearer key.
_POST_OPTIONS: Any = {"security": {"bearer_auth": True}}


_ERRORS = SdkErrors(
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    status=openai.APIStatusError,
    authentication=openai.AuthenticationError,
    permission=openai.PermissionDeniedError,
    base=openai.OpenAIError,
    key_env="OPENAI_API_KEY",
)


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
        send_temperature: bool | None = None,
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
        if send_temperature is None:
            send_temperature = _REASONING.match(model) is None
        self.send_temperature = send_temperature
        self._official = official
        self._key_hint = "OPENAI_API_KEY"

    @property
    def cache_identity(self) -> str:
        return f"{self.spec} @{self.base_url} mode={self.mode}"

    async def check(self, *, images: bool) -> None:
        """The host answers, the key is accepted, and a server that lists models lists this one."""
        client = self._client.with_options(timeout=min(self.options.timeout_s, 15.0))
        where = "OPENAI_BASE_URL" if not self._official else "the OpenAI API"
        try:
            page = await client.models.list()
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            problem = setup_problem(exc, _ERRORS, self.spec, self.base_url, where)
            if problem is not None:
                raise problem from None
            return  # a server that does not list models (404, 405...): nothing to compare
        ids = [m.id for m in page.data]
        if ids and self.model not in ids:
            shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
            raise ConfigError(
                f"{self.spec}: {self.base_url} does not serve {self.model!r} (it lists {shown}): "
                "fix the model name"
            )

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
        return classify_sdk_error(exc, _ERRORS, self._url, self.options.timeout_s)

    async def _create(self, **body: Any) -> ChatCompletion:
        """POST /chat/completions with ``body`` as it is.

        ``chat.completions.create`` first runs the SDK's request transform, which walks every
        message part against the parameter TypedDicts (milliseconds per call with base64 images:
        more than the rest of our client work). Our bodies are built as plain JSON already, so
        they go straight to the SDK's own post (same auth, headers, timeout and response type).
        """
        return await self._client.post(
            "/chat/completions", body=body, cast_to=ChatCompletion, options=_POST_OPTIONS
        )

    async def complete(self, request: ModelRequest) -> ModelResult:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(request),
            self._max_tokens_key: request.max_tokens,
        }
        if self.send_temperature and request.temperature is not None:
            body["temperature"] = request.temperature
        call = SdkCall(
            self.spec, self._create, self._classify, _describe, self._runner, self._secrets
        )
        return await complete_with_instructor(
            call, request, body, options=self.options, semaphore=self.semaphore
        )

    async def aclose(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIProvider(spec={self.spec!r}, base_url={self.base_url!r}, mode={self.mode!r})"
