"""The model interface every backend implements: requests, attempts, results and `Provider`.

A `Provider` turns a `ModelRequest` (system text, prompt, PNG images, a Pydantic response model)
into a `ModelResult` holding the validated output plus a record of every HTTP attempt, with tokens,
latency and cost. Model and transport failures never raise: they come back as a result with
`error` set. Setup problems (no API key, a model that is not pulled) raise `ConfigError`.

A provider holds SDK clients bound to the event loop that first uses them: use one provider per
event loop and `await provider.aclose()` when done (or `async with provider:`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from neuroonco.agents.providers.pricing import cost_usd

ROLES = ("describer", "diagnostician", "critic", "arbiter")
OUTCOMES = (
    "ok",
    "invalid_output",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "error",
)


@dataclass(frozen=True)
class ImagePart:
    """One PNG image with a caption; its base64 form and digest are computed once and shared."""

    png: bytes = field(repr=False)
    caption: str = ""

    @functools.cached_property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")

    @functools.cached_property
    def data_url(self) -> str:
        return "data:image/png;base64," + self.base64

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


@functools.lru_cache(maxsize=256)
def schema_fingerprint(model: type[BaseModel]) -> str:
    """Name and JSON schema of a response model, as canonical text (cached per class)."""
    schema = json.dumps(model.model_json_schema(), sort_keys=True, separators=(",", ":"))
    return f"{model.__module__}.{model.__qualname__}:{schema}"


@dataclass
class ModelRequest:
    """One structured call: what the model reads and the Pydantic model its answer must fit."""

    role: str  # describer | diagnostician | critic | arbiter
    system: str
    prompt: str
    response_model: type[BaseModel]
    images: tuple[ImagePart, ...] = ()
    # Structured facts (measurements, modality, source label, votes...) that the builtin backend
    # reads; language models see the same facts written into `prompt`.
    grounding: dict[str, Any] = field(default_factory=dict)
    # Passed to response-model validation as the pydantic `context`.
    validation_context: dict[str, Any] | None = None
    temperature: float | None = 0.0  # None: not sent (reasoning models reject it)
    max_tokens: int = 1024

    def cache_key(self, identity: str) -> str:
        """sha256 over everything that decides the answer: the model's identity (spec, endpoint,
        mode: see `Provider.cache_identity`), texts, images, schema, params.

        The role and grounding are included too, because the builtin backend answers from them.
        """
        parts = [
            identity,
            self.role,
            self.system,
            self.prompt,
            [image.sha256 for image in self.images],
            [image.caption for image in self.images],
            schema_fingerprint(self.response_model),
            self.temperature,
            self.max_tokens,
            self.grounding,
        ]
        text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class AttemptRecord:
    """One HTTP attempt (transport retry or validation re-ask) and what came of it."""

    attempt: int
    outcome: str  # one of OUTCOMES
    error: str | None = None
    response: str | None = None  # the model's raw output text, or the error body
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    retry_after_s: float | None = None


@dataclass
class ModelResult:
    """The outcome of `Provider.complete`: tokens and latency cover ALL attempts."""

    spec: str
    output: BaseModel | None
    response: str | None
    error: str | None
    attempts: list[AttemptRecord]
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float | None

    @property
    def ok(self) -> bool:
        return self.output is not None and self.error is None


@dataclass(frozen=True)
class ProviderOptions:
    """Transport settings of one provider instance (no secrets live here)."""

    timeout_s: float = 60.0
    max_retries: int = 4  # transport retries on 429, 5xx, timeouts, connection errors
    validation_retries: int = 2  # re-asks when the output does not validate
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_concurrency: int = 8  # HTTP attempts in flight per provider instance

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0 or self.validation_retries < 0:
            raise ValueError("max_retries and validation_retries must be >= 0")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")


def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """Replace every secret (API key) in a text with '***'."""
    if not text:
        return text
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    return text


def build_result(
    spec: str,
    attempts: list[AttemptRecord],
    *,
    output: BaseModel | None,
    response: str | None,
    error: str | None,
    started: float,
) -> ModelResult:
    """Assemble a result, summing tokens over every attempt and pricing them."""
    input_tokens = sum(a.input_tokens for a in attempts)
    output_tokens = sum(a.output_tokens for a in attempts)
    return ModelResult(
        spec=spec,
        output=output,
        response=response,
        error=error,
        attempts=attempts,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        cost_usd=cost_usd(spec, input_tokens, output_tokens),
    )


class Provider(ABC):
    """A model backend named by a spec string (`openai:gpt-4o-mini`, `builtin`, ...)."""

    spec: str
    supports_multiple_images: bool = True

    def __init__(self, spec: str, options: ProviderOptions | None = None) -> None:
        self.spec = spec
        self.options = options or ProviderOptions()
        # Bounds HTTP attempts in flight; backoff sleeps happen outside it.
        self.semaphore = asyncio.Semaphore(self.options.max_concurrency)

    @abstractmethod
    async def complete(self, request: ModelRequest) -> ModelResult:
        """Run one structured call; failures come back as a result with `error` set."""

    async def aclose(self) -> None:
        """Release network clients (nothing to release by default)."""
        return None

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def cache_identity(self) -> str:
        """What tells this model's answers apart in the cache: the spec, plus the endpoint and the
        structured-output mode where a provider has them (one model name on two servers, or in
        two modes, gives different answers)."""
        return self.spec

    async def check(self, *, images: bool) -> None:
        """Fail fast on setup (credentials, host, model) before a run's first slice.

        Raises `ConfigError` with one line saying what to set or run; ``images``: whether the
        run will send this model images. Nothing to check by default.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r})"
