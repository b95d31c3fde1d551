"""The run's model caller: budget reservations, prices, call rows handed over at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from neuroonco.agents.providers.base import (
    AttemptRecord,
    ModelRequest,
    ModelResult,
    Provider,
)
from neuroonco.agents.providers.pricing import Prices
from neuroonco.agents.requests import build_request
from neuroonco.errors import ConfigError
from neuroonco.graph.calls import CallCache, ModelCaller


class SlowModel(Provider):
    """A provider answering after a pause, holding its run slot meanwhile."""

    def __init__(self, spec: str, pause_s: float) -> None:
        super().__init__(spec)
        self.pause_s = pause_s

    async def complete(self, request: ModelRequest) -> ModelResult:
        await asyncio.sleep(self.pause_s)
        return ModelResult(
            spec=self.spec,
            output=None,
            response=None,
            error="no answer",
            attempts=[AttemptRecord(attempt=1, outcome="error", error="no answer")],
            input_tokens=1000,
            output_tokens=100,
            latency_ms=1.0,
            cost_usd=None,
        )


def caller(rows: list[dict[str, Any]], **kwargs: Any) -> ModelCaller:
    return ModelCaller(
        {"openai:slow": SlowModel("openai:slow", 0.2)},
        run_id="r",
        cache=CallCache(None),
        concurrency=1,
        record=rows.append,
        **kwargs,
    )


def test_reservations_are_taken_when_a_call_starts_not_while_it_waits() -> None:
    rows: list[dict[str, Any]] = []
    calls = caller(rows, max_cost_usd=1.0, prices=Prices({"openai:slow": (1.0, 1.0)}))
    request = build_request("critic", {"modality": "t2", "findings": {"lesion_found": True}})
    expected = calls.expected_cost("openai:slow", request)
    seen: list[float] = []

    async def run() -> None:
        first = asyncio.create_task(calls.call("openai:slow", request, slice_id="a", round_=1))
        second = asyncio.create_task(calls.call("openai:slow", request, slice_id="b", round_=1))
        await asyncio.sleep(0.1)  # the first holds the only slot, the second waits for it
        seen.append(calls._reserved)
        await asyncio.gather(first, second)

    asyncio.run(run())
    assert seen == [pytest.approx(expected)]
    assert calls._reserved == pytest.approx(0.0)
    # Both calls' rows went to the writer as they ended, priced with the given price.
    assert [r["slice_id"] for r in rows] == ["a", "b"]
    assert all(r["cost_usd"] == pytest.approx((1000 + 100) / 1e6) for r in rows)


def test_the_estimate_uses_the_request_size_and_an_unpriced_model_is_refused() -> None:
    rows: list[dict[str, Any]] = []
    request = build_request("critic", {"modality": "t2", "findings": {"lesion_found": True}})
    calls = caller(rows, max_cost_usd=1.0)
    with pytest.raises(ConfigError, match="--price openai:slow=IN/OUT"):
        asyncio.run(calls.call("openai:slow", request, slice_id="a", round_=1))
    priced = caller(rows, prices=Prices({"openai:slow": (1e6, 0.0)}))
    # $1 per input token: the estimate is the request's own input tokens, schema included.
    assert priced.expected_cost("openai:slow", request) > (len(request.prompt) // 4)
