"""Transport retry rules: Retry-After parsing, backoff with full jitter, status classification."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from neuroonco.agents.providers.base import ProviderOptions
from neuroonco.agents.providers.retry import (
    RETRY_AFTER_MAX_S,
    AttemptLog,
    Failure,
    TransportFailed,
    backoff_delay,
    failure_from_status,
    parse_retry_after,
    send_with_retries,
)


def test_retry_after_in_seconds_milliseconds_and_http_dates():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


@pytest.mark.parametrize("headers", [None, {}, {"retry-after": "soon"}, {"retry-after": ""}])
def test_missing_or_garbled_retry_after_is_none(headers):
    assert parse_retry_after(headers) is None


def test_backoff_is_exponential_with_full_jitter_and_capped():
    options = ProviderOptions(backoff_base_s=0.5, backoff_max_s=4.0)
    assert [backoff_delay(i, options, rng=lambda: 1.0) for i in range(5)] == [0.5, 1, 2, 4, 4]
    assert backoff_delay(3, options, rng=lambda: 0.0) == 0.0
    assert backoff_delay(2, options, rng=lambda: 0.25) == 0.5


def test_backoff_honours_retry_after_with_a_little_jitter():
    options = ProviderOptions(backoff_base_s=0.5, backoff_max_s=4.0)
    assert backoff_delay(0, options, 10.0, rng=lambda: 0.0) == 10.0
    assert backoff_delay(0, options, 10.0, rng=lambda: 1.0) == pytest.approx(11.0)
    # An absurd Retry-After falls back to our own backoff.
    assert backoff_delay(0, options, RETRY_AFTER_MAX_S + 1, rng=lambda: 1.0) == 0.5


@pytest.mark.parametrize(
    ("status", "outcome", "retryable"),
    [
        (429, "rate_limited", True),
        (500, "server_error", True),
        (503, "server_error", True),
        (529, "server_error", True),
        (408, "timeout", True),
        (409, "error", True),
        (400, "error", False),
        (401, "error", False),
        (404, "error", False),
        (422, "error", False),
    ],
)
def test_status_classification(status, outcome, retryable):
    failure = failure_from_status(status, "http://h/v1", "body", {"retry-after": "2"}, "KEY_VAR")
    assert (failure.outcome, failure.retryable) == (outcome, retryable)
    assert "http://h/v1" in failure.message
    assert failure.retry_after_s == (2.0 if retryable else None)


def test_auth_failures_name_the_key_variable():
    failure = failure_from_status(401, "http://h", "nope", None, "OPENAI_API_KEY")
    assert failure.message == "authentication failed (HTTP 401) at http://h: check OPENAI_API_KEY"


class Flaky(Exception):
    pass


def run_sends(results: list[object], options: ProviderOptions, secrets=()) -> AttemptLog:
    """Drive send_with_retries over scripted results (exceptions are raised)."""
    log = AttemptLog(secrets)
    queue = list(results)

    async def send() -> object:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def classify(exc: Exception) -> Failure | None:
        if isinstance(exc, Flaky):
            return Failure("server_error", f"flaky {exc}", True, None, f"body {exc}")
        return None

    async def go() -> object:
        return await send_with_retries(
            send,
            classify=classify,
            describe=lambda r: (str(r), 3, 2),
            options=options,
            semaphore=asyncio.Semaphore(1),
            log=log,
        )

    asyncio.run(go())
    return log


def test_every_attempt_is_logged_and_numbered():
    options = ProviderOptions(max_retries=3, backoff_base_s=0.0)
    log = run_sends([Flaky("a"), Flaky("b"), "answer"], options)
    assert [(r.attempt, r.outcome) for r in log.records] == [
        (1, "server_error"),
        (2, "server_error"),
        (3, "ok"),
    ]
    assert log.records[-1].response == "answer" and log.records[-1].input_tokens == 3
    assert log.records[0].response == "body a"


def test_exhausted_retries_raise_transport_failed():
    options = ProviderOptions(max_retries=1, backoff_base_s=0.0)
    with pytest.raises(TransportFailed, match=r"flaky b \(gave up after 2 attempts\)"):
        run_sends([Flaky("a"), Flaky("b"), "never"], options)


def test_unclassified_exceptions_propagate():
    with pytest.raises(KeyError):
        run_sends([KeyError("bug")], ProviderOptions(max_retries=3))


def test_secrets_are_scrubbed_from_failures():
    options = ProviderOptions(max_retries=1, backoff_base_s=0.0)
    log = run_sends([Flaky("sk-123"), "ok sk-123"], options, secrets=("sk-123",))
    assert log.records[0].error == "flaky ***" and log.records[0].response == "body ***"
    assert log.records[1].response == "ok ***"


def test_mark_invalid_only_touches_an_ok_answer():
    log = AttemptLog()
    log.ok("{}", 1, 1, 1.0)
    log.mark_invalid("missing field")
    log.mark_invalid("again")
    assert (log.records[0].outcome, log.records[0].error) == ("invalid_output", "missing field")
