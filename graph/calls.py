"""Every model call of a run goes through :class:`ModelCaller`: cache, budget, slots, record.

A call is served from the store when the same model already answered the same request (cache
key: model, endpoint, mode, prompts, image hashes, schema, parameters); otherwise it waits for a
slot of the run-wide concurrency limit, reserves its expected cost against the budget, runs on
its provider, and its ``agent_calls`` row goes straight to the run's writer (``record``), so the
calls of a slice are stored whatever becomes of the slice afterwards.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from neuroonco import store
from neuroonco.agents.providers.base import ModelRequest, ModelResult, Provider, schema_fingerprint
from neuroonco.agents.providers.pricing import Prices, estimate_tokens
from neuroonco.errors import ConfigError
from neuroonco.graph.slots import PrioritySlots

# Later stages first (the graph runs describer -> critic -> diagnostician -> arbiter), so
# slices finish instead of all advancing together.
STAGE_PRIORITY = {"arbiter": 0, "diagnostician": 1, "critic": 2, "describer": 3}


class BudgetExceeded(Exception):
    """The next paid call would take the run past ``--max-cost``."""


@dataclass
class CallOutcome:
    """A validated output (or None) and the ``agent_calls`` row describing the call."""

    output: BaseModel | None
    row: dict[str, Any]
    error: str | None

    @property
    def invalid(self) -> bool:
        """An answer came back but did not validate (not a transport failure)."""
        log = json.loads(self.row.get("attempt_log") or "[]")
        return bool(log) and log[-1]["outcome"] == "invalid_output"


@dataclass
class RunTally:
    """Running totals for the progress bar and the summary."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, int] = field(default_factory=dict)


class CallCache:
    """Looks up earlier successful answers in ``agent_calls`` by cache key.

    Answers not yet committed by the writer are held in ``recent`` until the writer has
    flushed them (:meth:`forget`), so the cache costs no memory that grows with the run.
    """

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self.recent: dict[str, tuple[str | None, str, int, int]] = {}

    def forget(self, keys: Iterable[str]) -> None:
        """Drop answers the store now holds (called after each writer flush)."""
        for key in keys:
            self.recent.pop(key, None)

    def get(self, key: str) -> tuple[str | None, str, int, int] | None:
        hit = self.recent.get(key)
        if hit is not None or self.conn is None:
            return hit
        return self.conn.execute(
            "select response, output, input_tokens, output_tokens from agent_calls "
            "where cache_key = ? and output is not null limit 1",
            (key,),
        ).fetchone()

    def put(self, key: str, row: dict[str, Any]) -> None:
        if row["output"] is not None:
            self.recent[key] = (
                row["response"],
                row["output"],
                row["input_tokens"],
                row["output_tokens"],
            )


class ModelCaller:
    """Runs (or serves from cache) the model calls of one run."""

    def __init__(
        self,
        providers: dict[str, Provider],
        *,
        run_id: str,
        cache: CallCache,
        concurrency: int,
        record: Callable[[dict[str, Any]], None],
        max_cost_usd: float | None = None,
        prices: Prices | None = None,
    ) -> None:
        self.providers = providers
        self.run_id = run_id
        self.cache = cache
        self.slots = PrioritySlots(concurrency)
        self.record = record
        """Takes every ``agent_calls`` row as soon as its call is over (the run's writer)."""
        self.max_cost_usd = max_cost_usd
        self.prices = prices or Prices()
        self.tally = RunTally()
        self._ids = itertools.count(1)
        self._reserved = 0.0
        self._spent_by_spec: dict[str, tuple[int, float]] = {}

    def provider(self, spec: str) -> Provider:
        try:
            return self.providers[spec]
        except KeyError:
            raise ConfigError(f"no provider was set up for {spec!r}") from None

    async def call(
        self,
        spec: str,
        request: ModelRequest,
        *,
        slice_id: str,
        round_: int,
        seq: int = 0,
        target: str | None = None,
    ) -> CallOutcome:
        """One agent call for ``slice_id``; never raises for model failures."""
        provider = self.provider(spec)
        key = request.cache_key(provider.cache_identity)
        hit = self.cache.get(key)
        if hit is not None:
            outcome = self._from_cache(spec, request, hit, key, slice_id, round_, target)
            if outcome is not None:
                return outcome
        if spec == "builtin":  # in-process and instant: no slot, no budget
            result = await provider.complete(request)
        else:
            async with self.slots.hold((STAGE_PRIORITY.get(request.role, 9), seq)):
                # Reserved once the call starts, not while it waits: waiting costs nothing.
                reserved = self._reserve(spec, request)
                try:
                    result = await provider.complete(request)
                finally:
                    self._reserved -= reserved
        row = self._row(spec, request, result, key, slice_id, round_, target)
        if row["cost_usd"]:
            n, total = self._spent_by_spec.get(spec, (0, 0.0))
            self._spent_by_spec[spec] = (n + 1, total + row["cost_usd"])
        self.cache.put(key, row)
        self._count(row)
        return CallOutcome(result.output if result.ok else None, row, row["error"])

    def expected_cost(self, spec: str, request: ModelRequest) -> float | None:
        """The mean cost of this model's calls so far in the run, else the estimate from the
        request's own size (texts, schema, images); None for an unpriced model."""
        n, total = self._spent_by_spec.get(spec, (0, 0.0))
        if n:
            return total / n
        schema = schema_fingerprint(request.response_model)
        return self.prices.cost(spec, *estimate_tokens(request, schema))

    def _reserve(self, spec: str, request: ModelRequest) -> float:
        """Hold the expected cost of the call; refuse it if the budget cannot cover it.

        Calls in flight hold theirs, so concurrency cannot overshoot.
        """
        if self.max_cost_usd is None:
            return 0.0
        expected = self.expected_cost(spec, request)
        if expected is None:
            raise ConfigError(
                f"no price known for {spec}, so --max-cost cannot hold: pass --price "
                f"{spec}=IN/OUT (USD per million tokens) or set it under [prices] in --config"
            )
        committed = self.tally.cost_usd + self._reserved
        if committed + expected > self.max_cost_usd:
            raise BudgetExceeded(
                f"spent ${self.tally.cost_usd:.4f} (${self._reserved:.4f} more in flight); the "
                f"next {spec} call (~${expected:.4f}) would pass the "
                f"${self.max_cost_usd:.4f} budget"
            )
        self._reserved += expected
        return expected

    def _from_cache(
        self,
        spec: str,
        request: ModelRequest,
        hit: tuple,
        key: str,
        slice_id: str,
        round_: int,
        target: str | None,
    ) -> CallOutcome | None:
        response, output_json, in_tok, out_tok = hit
        try:
            output = request.response_model.model_validate_json(
                output_json, context=request.validation_context
            )
        except ValidationError:
            return None  # the schema changed since: ask the model again
        row = self._base_row(spec, request, key, slice_id, round_, target)
        row.update(
            response=response,
            output=output_json,
            error=None,
            attempts=0,
            latency_ms=0.0,
            input_tokens=in_tok,
            output_tokens=out_tok,
            cost_usd=0.0,
            cached=1,
            attempt_log="[]",
        )
        self._count(row)
        return CallOutcome(output, row, None)

    def _base_row(
        self,
        spec: str,
        request: ModelRequest,
        key: str,
        slice_id: str,
        round_: int,
        target: str | None,
    ) -> dict[str, Any]:
        return {
            "id": f"{self.run_id}-{next(self._ids):06d}",
            "run_id": self.run_id,
            "slice_id": slice_id,
            "role": request.role,
            "model": spec,
            "round": round_,
            "prompt": request.prompt,  # text only: images are referenced by hash in the key
            "cache_key": key,
            "target": target,
            "created_at": store.now(),
        }

    def _row(
        self,
        spec: str,
        request: ModelRequest,
        result: ModelResult,
        key: str,
        slice_id: str,
        round_: int,
        target: str | None,
    ) -> dict[str, Any]:
        row = self._base_row(spec, request, key, slice_id, round_, target)
        row.update(
            response=result.response,
            output=result.output.model_dump_json() if result.ok else None,
            error=result.error,
            attempts=len(result.attempts),
            latency_ms=round(result.latency_ms, 2),
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=self.prices.cost(spec, result.input_tokens, result.output_tokens),
            cached=0,
            attempt_log=json.dumps(
                [
                    {
                        "attempt": a.attempt,
                        "outcome": a.outcome,
                        "error": a.error,
                        "input_tokens": a.input_tokens,
                        "output_tokens": a.output_tokens,
                        "latency_ms": round(a.latency_ms, 2),
                        "retry_after_s": a.retry_after_s,
                    }
                    for a in result.attempts
                ]
            ),
        )
        return row

    def _count(self, row: dict[str, Any]) -> None:
        self.record(row)
        t = self.tally
        t.calls += 1
        t.cached += row["cached"]
        t.failed += row["output"] is None
        if not row["cached"]:
            t.input_tokens += row["input_tokens"] or 0
            t.output_tokens += row["output_tokens"] or 0
            t.cost_usd += row["cost_usd"] or 0.0
        t.by_model[row["model"]] = t.by_model.get(row["model"], 0) + 1
