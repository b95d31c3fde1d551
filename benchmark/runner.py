"""`bench run`: ask one model every question of a benchmark file, concurrently, resumably.

Each finished question appends one JSON line to the predictions file and flushes it, so a run
killed at any moment (kill -9 included) keeps everything it finished; a torn last line is cut off
when the run resumes. Questions already answered without error are skipped on resume; errored ones
are asked again (the last line per question is the one `bench score` reads). Answers are also
cached by content (benchmark/cache.py), so a run into a new file asks again for nothing.

A missing image, or an `image_path` that leaves `--images-root`, is recorded as that question's
error (`error_kind: "image"`) and the run goes on. Setup problems (no API key, a model that is
not pulled) raise ConfigError before or during the run; the lines already written stay.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroonco.benchmark.cache import AnswerCache, answer_key
from neuroonco.benchmark.files import Bench, ClosedQuestion, Question, rotations
from neuroonco.benchmark.images import ImageProblem, file_digest, resolve_image
from neuroonco.benchmark.models import BenchAnswer, BenchRequest, make_bench_model
from neuroonco.benchmark.prompts import prompt_for

CACHE_NAME = ".neuroonco-bench-cache.sqlite"


@dataclass
class RunOptions:
    """Settings of one `bench run`."""

    images_root: Path
    concurrency: int = 8
    max_tokens_closed: int = 256
    max_tokens_open: int = 512
    circular: bool = False  # also ask every CircularEval rotation of the closed questions
    seed: int = 0
    timeout_s: float = 120.0
    cache_path: Path | None = None  # None: <predictions folder>/.neuroonco-bench-cache.sqlite
    use_cache: bool = True
    limit: int | None = None  # only the first N questions (a smoke test)
    batch_size: int = 8  # questions per call for models offering `answer_batch`


@dataclass
class RunSummary:
    """What a run did; `calls` counts model calls actually made (not cached, not skipped)."""

    total: int = 0
    skipped: int = 0
    answered: int = 0
    cached: int = 0
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    error_examples: list[str] = field(default_factory=list)


def row_key(row: dict[str, Any]) -> tuple[str, int]:
    return str(row.get("question_id")), int(row.get("rotation") or 0)


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Every parseable line of a predictions file (a torn or foreign line is skipped)."""
    rows = []
    if not path.exists():
        return rows
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "question_id" in row:
                rows.append(row)
    return rows


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line left half-written by a kill, so the next append starts a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(cut)


def work_items(bench: Bench, options: RunOptions) -> list[Question]:
    """The questions to ask, CircularEval rotations included when asked for."""
    questions = bench.questions[: options.limit] if options.limit else bench.questions
    items: list[Question] = []
    for question in questions:
        if options.circular and isinstance(question, ClosedQuestion):
            items.extend(rotations(question))
        else:
            items.append(question)
    return items


class BenchRunner:
    """Drives one model over the work items and writes the predictions file."""

    def __init__(self, bench: Bench, spec: str, out: Path, options: RunOptions) -> None:
        self.bench = bench
        self.spec = spec
        self.out = out
        self.options = options
        self.summary = RunSummary()
        self.on_row: Callable[[dict[str, Any]], None] | None = None
        self.on_start: Callable[[RunSummary], None] | None = None
        self._handle: Any = None
        self._cache: AnswerCache | None = None
        self._model: Any = None

    def _request(self, question: Question) -> BenchRequest:
        closed = isinstance(question, ClosedQuestion)
        return BenchRequest(
            question_id=question.question_id,
            prompt=prompt_for(question),
            images=[],
            kind="closed" if closed else "open",
            max_tokens=self.options.max_tokens_closed if closed else self.options.max_tokens_open,
            question_type=question.question_type,
            options=dict(question.options) if closed else None,
        )

    def _write(self, question: Question, answer: BenchAnswer, **extra: Any) -> None:
        row: dict[str, Any] = {"question_id": question.question_id}
        if self.options.circular and isinstance(question, ClosedQuestion):
            row["rotation"] = question.rotation
        row.update(
            response=answer.text,
            model=self.spec,
            kind=question.kind,
            error=answer.error,
            latency_ms=round(answer.latency_ms, 1),
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            cost_usd=answer.cost_usd,
            created_at=time.time(),
            **extra,
        )
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        s = self.summary
        s.answered += 1
        s.input_tokens += answer.input_tokens
        s.output_tokens += answer.output_tokens
        s.cost_usd += answer.cost_usd or 0.0
        if answer.error:
            s.errors += 1
            if len(s.error_examples) < 5:
                s.error_examples.append(f"{question.question_id}: {answer.error}")
        if self.on_row is not None:
            self.on_row(row)

    def _prepare(self, question: Question) -> tuple[BenchRequest, str | None] | str:
        """(request, cache key) or the image error text."""
        request = self._request(question)
        digests: list[str] = []
        if getattr(self._model, "needs_images", True):
            try:
                path = resolve_image(self.options.images_root, question.image_path)
                digests.append(file_digest(path))
            except ImageProblem as exc:
                return str(exc)
            except OSError as exc:
                return f"cannot read image {question.image_path}: {exc}"
            request.images = [path]
        key = None
        if self._cache is not None:
            key = answer_key(
                self.spec, request.prompt, digests, request.max_tokens, request.temperature
            )
        return request, key

    def _settle(self, question: Question) -> tuple[BenchRequest, str | None] | None:
        """Write the line of a question needing no call (image error, cache hit), else None."""
        prepared = self._prepare(question)
        if isinstance(prepared, str):
            self._write(question, BenchAnswer(text="", error=prepared), error_kind="image")
            return None
        request, key = prepared
        if key is not None and self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self.summary.cached += 1
                answer = BenchAnswer(
                    text=hit["response"],
                    input_tokens=hit["input_tokens"],
                    output_tokens=hit["output_tokens"],
                    cost_usd=0.0,
                )
                self._write(question, answer, cached=True)
                return None
        return request, key

    def _finish(self, question: Question, key: str | None, answer: BenchAnswer) -> None:
        self._store(key, answer)
        extra = {"error_kind": "model"} if answer.error else {}
        self._write(question, answer, cached=False, **extra)

    async def _ask(self, question: Question) -> None:
        pending = self._settle(question)
        if pending is None:
            return
        request, key = pending
        self.summary.calls += 1
        self._finish(question, key, await self._model.answer(request))

    async def _ask_batch(self, questions: list[Question]) -> None:
        """Models with `answer_batch` (local checkpoints) get the uncached questions at once."""
        pending = [(q, p) for q in questions if (p := self._settle(q)) is not None]
        if not pending:
            return
        self.summary.calls += len(pending)
        answers = await self._model.answer_batch([request for _, (request, _) in pending])
        for (question, (_, key)), answer in zip(pending, answers, strict=True):
            self._finish(question, key, answer)

    def _store(self, key: str | None, answer: BenchAnswer) -> None:
        if key is not None and self._cache is not None and answer.error is None:
            self._cache.put(
                key,
                self.spec,
                answer.text,
                answer.input_tokens,
                answer.output_tokens,
                answer.cost_usd,
            )

    async def _worker(self, items: Iterator[Question]) -> None:
        if not hasattr(self._model, "answer_batch"):
            for question in items:
                await self._ask(question)
            return
        while batch := list(itertools.islice(items, self.options.batch_size)):
            await self._ask_batch(batch)

    async def run(self) -> RunSummary:
        started = time.perf_counter()
        items = work_items(self.bench, self.options)
        self.summary.total = len(items)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_tail(self.out)
        done = {row_key(r) for r in read_predictions(self.out) if not r.get("error")}
        todo = [q for q in items if (q.question_id, getattr(q, "rotation", 0)) not in done]
        self.summary.skipped = len(items) - len(todo)
        if self.on_start is not None:
            self.on_start(self.summary)
        model_options = {
            "concurrency": self.options.concurrency,
            "timeout_s": self.options.timeout_s,
            "seed": self.options.seed,
            "questions": self.bench.questions,
        }
        self._model = make_bench_model(self.spec, model_options)
        if self.options.use_cache and getattr(self._model, "cacheable", True):
            self._cache = AnswerCache(self.options.cache_path or self.out.parent / CACHE_NAME)
        try:
            with self.out.open("a", encoding="utf-8") as self._handle:
                shared = iter(todo)  # workers pull from one iterator: at most N in flight
                workers = max(1, min(self.options.concurrency, len(todo)))
                await asyncio.gather(*(self._worker(shared) for _ in range(workers)))
        finally:
            close = getattr(self._model, "aclose", None)
            if close is not None:
                await close()
            if self._cache is not None:
                self._cache.close()
        self.summary.elapsed_s = time.perf_counter() - started
        return self.summary


def run_bench(
    bench: Bench,
    spec: str,
    out: Path,
    options: RunOptions,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Run `spec` over `bench` into `out` (appending; resuming what is there).

    `on_start(summary)` is called once the work is known (total, skipped); `on_row(row)` after
    each line written.
    """
    runner = BenchRunner(bench, spec, out, options)
    runner.on_row = on_row
    runner.on_start = on_start
    return asyncio.run(runner.run())
