"""The batch runner: the graph over every stored slice not yet annotated under this config.

Slices stream from the store in rowid order (keyset pages, so memory does not grow with the
store); a pool of worker tasks invokes the graph once per slice while the run-wide slots bound
the model calls in flight (``concurrency``). Before the first slice every model of the run is
checked once (:func:`check_setup`: prices under a budget, credentials, host, model), so a setup
error stops the run with one line and nothing written. A slice that fails (no describer gave a
usable answer, or a bug) is recorded as ``failed`` with its error and the run goes on; a run that
would pass ``max_cost_usd`` stops cleanly before the call that would exceed it. Re-running the
same command resumes: finished slices are skipped, failed ones are tried again (the new
annotation replaces the failed one) and repeated calls are served from the cache.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import sqlite_utils

from neuroonco import store
from neuroonco.agents.prompts import PROMPT_VERSION
from neuroonco.agents.providers.base import Provider, ProviderOptions
from neuroonco.agents.providers.pricing import Prices
from neuroonco.agents.providers.registry import canonical_spec, provider_for
from neuroonco.errors import ConfigError
from neuroonco.graph.calls import BudgetExceeded, CallCache, ModelCaller, RunTally
from neuroonco.graph.context import AnnotateConfig, GraphContext
from neuroonco.graph.graph import build_graph
from neuroonco.graph.writer import AnnotationWriter

PAGE = 256
VERSIONED = ("neuroonco", "langgraph", "instructor", "openai", "anthropic", "ollama", "pydantic")


@dataclass
class RunSummary:
    run_id: str
    config_hash: str
    pending: int = 0
    done: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    tally: RunTally = field(default_factory=RunTally)
    elapsed_s: float = 0.0
    stopped: str | None = None
    paused: int = 0
    """Slices paused for a person's decision (``--review``)."""

    @property
    def slices_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        t = self.tally
        return {
            "run_id": self.run_id,
            "pending": self.pending,
            "done": self.done,
            "by_status": self.by_status,
            "calls": t.calls,
            "cached_calls": t.cached,
            "failed_calls": t.failed,
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "cost_usd": round(t.cost_usd, 6),
            "elapsed_s": round(self.elapsed_s, 3),
            "slices_per_s": round(self.slices_per_s, 3),
            "stopped": self.stopped,
            "paused": self.paused,
        }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "prompts": PROMPT_VERSION}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def pending_count(db: sqlite_utils.Database, config_hash: str) -> int:
    return db.execute(
        "select count(*) from slices s where s.duplicate_of is null and not exists ("
        " select 1 from annotations a where a.slice_id = s.id and a.config_hash = ?"
        " and a.status != 'failed')",
        [config_hash],
    ).fetchone()[0]


def pending_slices(
    db: sqlite_utils.Database, config_hash: str, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Slices to annotate, oldest first, each with its group's other sequences as siblings."""
    last, left = 0, limit if limit is not None else -1
    while left != 0:
        size = PAGE if left < 0 else min(PAGE, left)
        rows = list(
            db.query(
                "select rowid as _rowid, * from slices s where rowid > ? and duplicate_of is null"
                " and not exists (select 1 from annotations a where a.slice_id = s.id"
                " and a.config_hash = ? and a.status != 'failed') order by rowid limit ?",
                [last, config_hash, size],
            )
        )
        if not rows:
            return
        siblings = _siblings(db, {r["group_id"] for r in rows if r["group_id"]})
        for row in rows:
            row["siblings"] = [s for s in siblings.get(row["group_id"], ()) if s["id"] != row["id"]]
            if row.get("measurements"):
                row["measurements"] = json.loads(row["measurements"])
            yield row
        last = rows[-1]["_rowid"]
        left = left - len(rows) if left > 0 else left


def _siblings(db: sqlite_utils.Database, groups: set[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not groups:
        return out
    marks = ",".join("?" * len(groups))
    for row in db.query(
        f"select id, group_id, modality, image_path from slices where group_id in ({marks})"
        " order by modality",
        sorted(groups),
    ):
        out.setdefault(row["group_id"], []).append(row)
    return out


def make_providers(config: AnnotateConfig, options: ProviderOptions) -> dict[str, Provider]:
    """One provider per spec of the run, with its `--config` options applied."""
    specs = config.specs()
    return {spec: provider_for(spec, options, config.model_options(spec)) for spec in specs}


def run_prices(config: AnnotateConfig, given: dict[str, tuple[float, float]] | None) -> Prices:
    """The price table of a run: list prices, then --config's `prices`, then --price."""
    table = {spec: (pair[0], pair[1]) for spec, pair in config.prices.items()}
    table.update({canonical_spec(k): v for k, v in (given or {}).items()})
    return Prices(table)


async def check_setup(
    config: AnnotateConfig,
    providers: dict[str, Provider],
    *,
    max_cost_usd: float | None = None,
    prices: Prices | None = None,
) -> None:
    """Every spec of the run checked once, before the first slice: a model without a price
    under a budget, then each provider's own setup (credentials, host, model). ConfigError."""
    prices = prices or Prices()
    if max_cost_usd is not None:
        for spec in providers:
            if prices.per_million(spec) is None:
                raise ConfigError(
                    f"no price known for {spec}, so --max-cost cannot hold: pass --price "
                    f"{spec}=IN/OUT (USD per million input/output tokens) or set it under "
                    "prices in --config"
                )
    seeing = {*config.describers, config.diagnostician}
    for spec, provider in providers.items():
        await provider.check(images=spec in seeing)


class Runner:
    """One `annotate` run over a store."""

    def __init__(
        self,
        db_path: Path,
        config: AnnotateConfig,
        *,
        concurrency: int = 8,
        limit: int | None = None,
        max_cost_usd: float | None = None,
        provider_options: ProviderOptions | None = None,
        providers: dict[str, Provider] | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        review: bool = False,
    ) -> None:
        self.db_path = Path(db_path)
        self.review = review
        """Pause needs_review slices for a person (graph.review); checkpoints beside the DB."""
        self.config = config
        self.concurrency = concurrency
        self.limit = limit
        self.max_cost_usd = max_cost_usd
        self.options = provider_options or ProviderOptions(max_concurrency=max(concurrency, 1))
        self.prices = run_prices(config, prices)
        self._providers = providers
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.summary = RunSummary(self.run_id, config.config_hash())
        self.stop_requested = False
        self.setup_error: ConfigError | None = None
        self._checked = False
        self._stale_threads: set[str] = set()

    async def check(self) -> None:
        """Fail fast on setup with throwaway providers (nothing is written); a run after a
        passed check does not check again."""
        providers = self._providers or make_providers(self.config, self.options)
        try:
            await check_setup(
                self.config, providers, max_cost_usd=self.max_cost_usd, prices=self.prices
            )
            self._checked = True
        finally:
            if self._providers is None:
                for provider in providers.values():
                    await provider.aclose()

    async def run(self, on_progress: Callable[[RunSummary], None] | None = None) -> RunSummary:
        providers = self._providers or make_providers(self.config, self.options)
        try:
            # Before the store is opened: a setup error leaves nothing behind.
            if not self._checked:
                await check_setup(
                    self.config, providers, max_cost_usd=self.max_cost_usd, prices=self.prices
                )
        except BaseException:
            if self._providers is None:
                for provider in providers.values():
                    await provider.aclose()
            raise
        db = store.connect(self.db_path)
        reader = store.connect(self.db_path)  # a second connection: reads never wait on writes
        started = time.perf_counter()
        try:
            self.summary.pending = min(
                pending_count(db, self.summary.config_hash), self.limit or 1 << 62
            )
            self._start_run(db)
            async with AnnotationWriter(db) as writer:
                caller = ModelCaller(
                    providers,
                    run_id=self.run_id,
                    cache=CallCache(reader.conn),
                    concurrency=self.concurrency,
                    record=writer.record_call,
                    max_cost_usd=self.max_cost_usd,
                    prices=self.prices,
                )
                writer.on_flush = caller.cache.forget
                self.summary.tally = caller.tally
                ctx = GraphContext(
                    config=self.config,
                    caller=caller,
                    base_dir=self.db_path.parent,
                    run_id=self.run_id,
                    config_hash=self.summary.config_hash,
                    writer=writer,
                )
                slices = pending_slices(db, ctx.config_hash, self.limit)
                if self.review:
                    from neuroonco.graph.review import open_checkpoints

                    async with open_checkpoints(self.db_path) as saver:
                        # One read instead of one per slice: threads already in the file.
                        async with saver.conn.execute(
                            "select distinct thread_id from checkpoints"
                        ) as cursor:
                            self._stale_threads = {r[0] async for r in cursor}
                        await self._drive(ctx, slices, on_progress, saver)
                else:
                    await self._drive(ctx, slices, on_progress)
            self.summary.by_status = dict(writer.status_counts)
            if self.setup_error is not None:
                raise self.setup_error
        finally:
            self.summary.elapsed_s = time.perf_counter() - started
            self._finish_run(db)
            if self._providers is None:
                for provider in providers.values():
                    await provider.aclose()
            reader.close()
            db.close()
        return self.summary

    async def _drive(
        self,
        ctx: GraphContext,
        slices: Iterator[dict[str, Any]],
        on_progress: Callable[[RunSummary], None] | None,
        saver: Any = None,
    ) -> None:
        graph = build_graph(review_slices=saver is not None, checkpointer=saver)
        # More workers than call slots: a slice between calls leaves no slot idle.
        workers = self.concurrency + max(2, self.concurrency // 2)

        numbered = enumerate(slices)  # a plain iterator: next() never interleaves in asyncio

        async def worker() -> None:
            while not self.stop_requested:
                item = next(numbered, None)
                if item is None:
                    return
                await self._one(graph, ctx, *item, saver=saver)
                self.summary.done += 1
                if on_progress is not None:
                    on_progress(self.summary)

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _one(
        self, graph: Any, ctx: GraphContext, seq: int, row: dict[str, Any], saver: Any = None
    ) -> None:
        # The calls a slice made are with the writer already, whatever happens here.
        try:
            if saver is None:
                await graph.ainvoke({"slice": row, "seq": seq}, context=ctx)
            else:
                await self._one_reviewed(graph, ctx, seq, row, saver)
        except BudgetExceeded as exc:
            self.stop_requested = True
            self.summary.stopped = f"budget reached: {exc}"
            self.summary.done -= 1  # not annotated: the next run picks it up
        except ConfigError as exc:  # a setup problem the checks could not see: stop the run
            self.stop_requested = True
            self.summary.stopped = f"setup error: {exc}"
            self.summary.done -= 1
            self.setup_error = exc
        except Exception as exc:  # one slice's bug must not end the run: record it, go on
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            await ctx.writer.put(
                {
                    "slice_id": row["id"],
                    "run_id": ctx.run_id,
                    "status": "failed",
                    "findings": None,
                    "agreement": None,
                    "rounds": 0,
                    "error": error,
                    "config_hash": ctx.config_hash,
                }
            )

    async def _one_reviewed(
        self, graph: Any, ctx: GraphContext, seq: int, row: dict[str, Any], saver: Any
    ) -> None:
        """One slice under ``--review``: checkpointed once, when the graph stops (durability
        "exit"); a pause is kept and its needs_review annotation committed at once, a finished
        slice's thread is dropped."""
        from neuroonco.graph.nodes import annotation_row
        from neuroonco.graph.review import thread_id

        tid = thread_id(ctx.config_hash, row["id"])
        config = {"configurable": {"thread_id": tid}}
        if tid in self._stale_threads:  # a pause whose annotation a crash lost: start afresh
            await saver.adelete_thread(tid)
        result = await graph.ainvoke(
            {"slice": row, "seq": seq}, config, context=ctx, durability="exit"
        )
        if result.get("__interrupt__"):
            await ctx.writer.put(annotation_row(result, ctx))
            ctx.writer.flush()
            self.summary.paused += 1
        else:
            await saver.adelete_thread(tid)

    def _start_run(self, db: sqlite_utils.Database) -> None:
        config = {
            **self.config.as_dict(),
            "concurrency": self.concurrency,
            "limit": self.limit,
            "max_cost_usd": self.max_cost_usd,
            "review": self.review,
        }
        with store.transaction(db):
            db["runs"].insert(
                {
                    "id": self.run_id,
                    "started_at": store.now(),
                    "finished_at": None,
                    "config": store.dumps(config),
                    "versions": store.dumps(versions()),
                    "config_hash": self.summary.config_hash,
                    "summary": None,
                }
            )

    def _finish_run(self, db: sqlite_utils.Database) -> None:
        with store.transaction(db):
            db["runs"].update(
                self.run_id,
                {"finished_at": store.now(), "summary": store.dumps(self.summary.as_dict())},
            )


def annotate(db_path: Path, config: AnnotateConfig | None = None, **kwargs: Any) -> RunSummary:
    """Synchronous entry point: run the graph over the store at ``db_path``."""
    on_progress = kwargs.pop("on_progress", None)
    runner = Runner(db_path, config or AnnotateConfig(), **kwargs)
    return asyncio.run(runner.run(on_progress))
