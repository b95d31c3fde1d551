"""How a model call is retried: transport retries with backoff, and validation re-asks.

The SDKs' own retries are switched off so that every HTTP attempt passes through
`send_with_retries` and is recorded as an `AttemptRecord`. 429, 5xx, 408, 409, timeouts and
connection errors are retried with exponential backoff and full jitter, honouring `Retry-After`
(`retry-after-ms`, seconds, or an HTTP date); other 4xx fail at once.

Validation re-asks wrap transport retries: `InstructorRunner` drives instructor's own loop
(parse, validate with the request's context, re-ask with the validator's error text) over a
`send` that is itself transport-retried, so a 429 during a re-ask is retried without using up a
re-ask, and both kinds of attempt land in one `AttemptLog`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from neuroonco.agents.providers.base import AttemptRecord, ModelRequest, ProviderOptions, redact

T = TypeVar("T")

# Above this a server's Retry-After is ignored in favour of our own backoff (as the OpenAI SDK
# does), so one odd header cannot park a batch for an hour.
RETRY_AFTER_MAX_S = 60.0
BODY_EXCERPT = 500

# instructor logs every failed attempt at ERROR; with logging unconfigured Python would print
# those to stderr. The attempt records hold the same facts, so they stay quiet unless the
# application configures logging itself.
logging.getLogger("instructor").addHandler(logging.NullHandler())


@dataclass
class Failure:
    """A classified transport failure of one attempt."""

    outcome: str  # rate_limited | server_error | timeout | connection_error | error
    message: str
    retryable: bool
    retry_after_s: float | None = None
    body: str | None = None


class TransportFailed(Exception):
    """Raised once transport retries are exhausted (or the failure is not retryable)."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        suffix = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
        super().__init__(failure.message + suffix)
        self.failure = failure
        self.message = failure.message + suffix


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait, from `retry-after-ms` or `retry-after`; None if absent."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def backoff_delay(
    retry_index: int,
    options: ProviderOptions,
    retry_after_s: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Delay before retry `retry_index` (0-based): the server's Retry-After, else full jitter."""
    if retry_after_s is not None and retry_after_s <= RETRY_AFTER_MAX_S:
        # A little jitter on top keeps many callers told the same value from stampeding back.
        return retry_after_s * (1.0 + 0.1 * rng())
    ceiling = min(options.backoff_max_s, options.backoff_base_s * (2**retry_index))
    return ceiling * rng()


def failure_from_status(
    status: int,
    url: str,
    body: str | None,
    headers: Mapping[str, str] | None = None,
    key_hint: str | None = None,
) -> Failure:
    """Classify an HTTP error status: which are retried and what the message says."""
    excerpt = (body or "")[:BODY_EXCERPT]
    retry_after = parse_retry_after(headers)
    if status == 429:
        message = f"rate limited (HTTP 429) by {url}"
        return Failure("rate_limited", message, True, retry_after, excerpt)
    if status >= 500:
        message = f"server error (HTTP {status}) from {url}: {excerpt}"
        return Failure("server_error", message, True, retry_after, excerpt)
    if status == 408:
        message = f"request timeout (HTTP 408) from {url}"
        return Failure("timeout", message, True, retry_after, excerpt)
    if status == 409:
        return Failure("error", f"conflict (HTTP 409) from {url}", True, retry_after, excerpt)
    if status in (401, 403) and key_hint:
        message = f"authentication failed (HTTP {status}) at {url}: check {key_hint}"
        return Failure("error", message, False, None, excerpt)
    return Failure("error", f"HTTP {status} from {url}: {excerpt}", False, None, excerpt)


class AttemptLog:
    """The attempts of one `complete` call, in order, with secrets scrubbed from every text."""

    __slots__ = ("records", "secrets")

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        self.records: list[AttemptRecord] = []
        self.secrets = secrets

    def ok(self, response: str | None, input_tokens: int, output_tokens: int, ms: float) -> None:
        self.records.append(
            AttemptRecord(
                attempt=len(self.records) + 1,
                outcome="ok",
                response=redact(response, self.secrets),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=ms,
            )
        )

    def failed(self, failure: Failure, ms: float) -> None:
        self.records.append(
            AttemptRecord(
                attempt=len(self.records) + 1,
                outcome=failure.outcome,
                error=redact(failure.message, self.secrets),
                response=redact(failure.body, self.secrets) or None,
                latency_ms=ms,
                retry_after_s=failure.retry_after_s,
            )
        )

    def mark_invalid(self, error: str) -> None:
        """The last answer arrived but did not validate: it becomes an `invalid_output` attempt."""
        if self.records and self.records[-1].outcome == "ok":
            self.records[-1].outcome = "invalid_output"
            self.records[-1].error = redact(error, self.secrets)

    @property
    def last_response(self) -> str | None:
        return self.records[-1].response if self.records else None


async def send_with_retries(
    send: Callable[[], Awaitable[T]],
    *,
    classify: Callable[[Exception], Failure | None],
    describe: Callable[[T], tuple[str | None, int, int]],
    options: ProviderOptions,
    semaphore: asyncio.Semaphore,
    log: AttemptLog,
) -> T:
    """Send one request, retrying transport failures; every attempt lands in `log`.

    `classify` maps an SDK exception to a `Failure` (None: not a transport failure, re-raised);
    `describe` extracts (raw output text, input tokens, output tokens) from a response.
    Raises `TransportFailed` when retries are exhausted or the failure is not retryable.
    """
    for retry in range(options.max_retries + 1):
        async with semaphore:
            started = time.perf_counter()
            try:
                response = await send()
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                # Scrub before anything (instructor's logger included) can see the text.
                failure.message = redact(failure.message, log.secrets) or ""
                failure.body = redact(failure.body, log.secrets)
                log.failed(failure, (time.perf_counter() - started) * 1000.0)
                if not failure.retryable or retry == options.max_retries:
                    raise TransportFailed(failure, retry + 1) from exc
                delay = backoff_delay(retry, options, failure.retry_after_s)
            else:
                text, input_tokens, output_tokens = describe(response)
                log.ok(text, input_tokens, output_tokens, (time.perf_counter() - started) * 1000.0)
                return response
        # Sleep outside the semaphore so a backing-off call does not hold a slot.
        await asyncio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def _short(error: BaseException, limit: int = 1000) -> str:
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "..."


class InstructorRunner:
    """Instructor's validation and re-ask loop for one (provider, mode).

    The request shaping instructor adds (tool definitions, response_format) is computed once per
    response model and reused: instructor's own `create` rebuilds a wrapper class and its JSON
    schema on every call, which costs milliseconds of CPU. Answers are parsed into the caller's
    own response model class. The validation context goes straight to validation; instructor's
    `create` would also render it into the messages as a Jinja template, which we do not want.
    """

    def __init__(self, provider: object, mode: object) -> None:
        from instructor import Mode
        from instructor.v2.core.errors import IncompleteOutputException, InstructorRetryException
        from instructor.v2.core.hooks import Hooks
        from instructor.v2.core.registry import mode_registry
        from instructor.v2.core.response_model import prepare_response_model
        from instructor.v2.core.retry import retry_async_v2

        self.provider = provider
        self.mode = mode
        self._handlers = mode_registry.get_handlers(provider, mode)  # type: ignore[arg-type]
        # These modes rewrite the messages themselves, so they are shaped per call.
        self._per_call = mode in (Mode.MD_JSON, Mode.JSON)
        self._prepare_model = prepare_response_model
        self._retry = retry_async_v2
        self._hooks = Hooks
        self._incomplete = IncompleteOutputException
        self._exhausted = InstructorRetryException
        self._shapes: dict[type[BaseModel], tuple[type[BaseModel], dict[str, Any] | None]] = {}

    def shape(self, response_model: type[BaseModel], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Add instructor's structured-output parameters to a request's kwargs."""
        entry = self._shapes.get(response_model)
        if entry is None:
            prepared = self._prepare_model(response_model)
            extras = None
            if not self._per_call:
                _, probe = self._handlers.request_handler(
                    response_model=prepared, kwargs={"messages": []}
                )
                extras = {k: v for k, v in probe.items() if k != "messages"}
            entry = self._shapes[response_model] = (prepared, extras)
        prepared, extras = entry
        if extras is None:
            return self._handlers.request_handler(response_model=prepared, kwargs=kwargs)[1]
        kwargs.update(extras)
        return kwargs

    async def run(
        self,
        send: Callable[..., Awaitable[Any]],
        kwargs: dict[str, Any],
        request: ModelRequest,
        log: AttemptLog,
        validation_retries: int,
    ) -> tuple[BaseModel | None, str | None]:
        """(validated output, None) or (None, error text); `send(**kwargs)` makes one request."""
        parse_errors: list[BaseException] = []

        def on_parse_error(error: BaseException, **_: Any) -> None:
            parse_errors.append(error)
            log.mark_invalid(_short(error))

        hooks = self._hooks()
        hooks.on("parse:error", on_parse_error)
        try:
            output = await self._retry(
                func=send,
                response_model=request.response_model,
                provider=self.provider,
                mode=self.mode,
                context=request.validation_context,
                max_retries=validation_retries,
                args=(),
                kwargs=self.shape(request.response_model, kwargs),
                # Lax parsing: "0.5" for a float is fine; the schema's validators hold the rules.
                strict=False,
                hooks=hooks,
            )
        except self._incomplete:
            error = f"output truncated at max_tokens={request.max_tokens}"
            log.mark_invalid(error)
            return None, error
        except self._exhausted as exc:
            cause = exc.__cause__ or exc
            if isinstance(cause, TransportFailed):
                return None, cause.message
            last = log.records[-1] if log.records else None
            if last is not None and last.outcome == "ok":
                # An answer arrived but could not be used (a refusal, no tool call...).
                log.mark_invalid(_short(cause))
            elif not (parse_errors and cause is parse_errors[-1]):
                raise cause from None  # not a model failure: a bug, let it surface
            answers = sum(1 for r in log.records if r.outcome == "invalid_output")
            error = f"invalid output after {answers} answers: {_short(cause)}"
            return None, redact(error, log.secrets)
        return output, None
