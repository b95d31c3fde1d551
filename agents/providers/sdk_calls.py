"""What the two Stainless-built SDK providers (`openai:` and `anthropic:`) share.

Both SDKs raise the same family of errors (timeout, connection, status with 401/403 subclasses,
a base error) and both providers run one request the same way: instructor's validation loop over a
transport-retried post, every attempt recorded. Only the error classes, the key's variable name,
the request body and the response reader differ; they are passed in here, so one code path holds
the behaviour the tests pin down (classification, setup checks, retries, result building).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from neuroonco.agents.providers.base import ModelRequest, ModelResult, build_result
from neuroonco.agents.providers.retry import (
    AttemptLog,
    Failure,
    InstructorRunner,
    failure_from_status,
    send_with_retries,
)
from neuroonco.errors import ConfigError


@dataclass(frozen=True)
class SdkErrors:
    """One SDK's exception classes, and the variable its key comes from."""

    timeout: type[Exception]
    connection: type[Exception]
    status: type[Exception]
    authentication: type[Exception]
    permission: type[Exception]
    base: type[Exception]
    key_env: str


def classify_sdk_error(
    exc: Exception, errors: SdkErrors, url: str, timeout_s: float
) -> Failure | None:
    """A transport failure of one attempt as :class:`Failure` (None: not the SDK's error).

    ``url`` names the endpoint when the exception carries no request of its own."""
    request = getattr(exc, "request", None)
    url = str(request.url) if request is not None else url
    if isinstance(exc, errors.timeout):
        return Failure("timeout", f"timed out after {timeout_s:g} s waiting for {url}", True)
    if isinstance(exc, errors.connection):
        detail = exc.__cause__ or exc
        return Failure("connection_error", f"cannot connect to {url}: {detail}", True)
    if isinstance(exc, errors.status):
        response = exc.response  # type: ignore[attr-defined]
        return failure_from_status(
            response.status_code, url, response.text, response.headers, errors.key_env
        )
    if isinstance(exc, errors.base):
        return Failure("error", f"{type(exc).__name__} from {url}: {exc}", False)
    return None


def setup_problem(
    exc: Exception, errors: SdkErrors, spec: str, base_url: str, where: str
) -> ConfigError | None:
    """The one-line reason a setup probe (a model listing) failed, or None when the answer
    still shows a reachable server (404, 405...: a server that does not list models)."""
    if isinstance(exc, errors.authentication):
        return ConfigError(
            f"{spec}: {base_url} refused the API key (HTTP 401): check {errors.key_env}"
        )
    if isinstance(exc, errors.permission):
        return ConfigError(f"{spec}: {base_url} denied access (HTTP 403): check {errors.key_env}")
    if isinstance(exc, errors.connection):
        return ConfigError(
            f"{spec}: cannot reach {base_url} ({exc.__cause__ or exc}): check {where} and that "
            "the server is running"
        )
    status = getattr(exc, "status_code", None)
    if isinstance(exc, errors.status) and status is not None and status >= 500:
        return ConfigError(
            f"{spec}: {base_url} answers HTTP {status} to a model listing: check the server "
            f"behind {where}"
        )
    return None


@dataclass
class SdkCall:
    """How one provider sends a request: its post, its error reader, its response reader."""

    spec: str
    create: Callable[..., Awaitable[Any]]
    classify: Callable[[Exception], Failure | None]
    describe: Callable[[Any], tuple[str | None, int, int]]
    runner: InstructorRunner
    secrets: tuple[str, ...]


async def complete_with_instructor(
    call: SdkCall,
    request: ModelRequest,
    body: dict[str, Any],
    *,
    options: Any,
    semaphore: Any,
) -> ModelResult:
    """Run ``request`` (its JSON ``body`` built by the provider) through instructor's re-ask
    loop, each HTTP attempt retried and recorded; always a :class:`ModelResult`."""
    started = time.perf_counter()
    log = AttemptLog(call.secrets)
    create = call.create

    async def send(**kwargs: Any) -> Any:
        return await send_with_retries(
            lambda: create(**kwargs),
            classify=call.classify,
            describe=call.describe,
            options=options,
            semaphore=semaphore,
            log=log,
        )

    output, error = await call.runner.run(send, body, request, log, options.validation_retries)
    return build_result(
        call.spec,
        log.records,
        output=output,
        response=log.last_response,
        error=error,
        started=started,
    )
