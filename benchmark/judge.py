"""Optional LLM judges for `bench score`, through any bench model spec, cached.

- Choice judge (`--judge SPEC`): asked only about closed responses the rules could not read; it
  names the option the response chose, or X. Its reply is read by the same strict rules, so a
  judge that hedges is itself a parse failure and the question stays wrong. Scores with the judge
  are reported beside the strict ones, never instead of them.
- Rubric judge (`--rubric-judge SPEC`): grades an open answer against the reference, 0 to 5,
  reported as its own 0..1 metric.

Judge replies live in the same answer cache as `bench run` (keyed by the judge spec and prompt),
so scoring again asks nothing twice.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from neuroonco.benchmark.cache import AnswerCache, answer_key
from neuroonco.benchmark.extract import Extraction, Extractor
from neuroonco.benchmark.files import ClosedQuestion, OpenQuestion
from neuroonco.benchmark.models import BenchRequest, make_bench_model

CHOICE_PROMPT = """Which option did a model choose in its answer to a multiple-choice question?

Question: {question}
Options:
{options}

The model answered:
<<<
{response}
>>>

Which single option did the answer choose? Reply with its letter only. If it chose no option,
chose several, or only said it cannot tell, reply X."""

RUBRIC_PROMPT = """Grade a model's answer to a question about a brain MRI against the reference.

Question: {question}
Reference answer: {reference}
Model answer:
<<<
{response}
>>>

Score 0 to 5: 5 = every finding in the reference stated correctly, nothing contradicted;
0 = wrong or no answer. Findings the reference negates must be negated too.
Reply with "Score: N" only."""

_SCORE = re.compile(r"(?i)\bscore\s*[:=]?\s*([0-5])\b|^\s*([0-5])\s*(?:/\s*5)?\s*$")


def choice_prompt(question: ClosedQuestion, response: str) -> str:
    options = "\n".join(f"{k}. {v}" for k, v in question.options.items())
    return CHOICE_PROMPT.format(question=question.question, options=options, response=response)


def rubric_prompt(question: OpenQuestion, response: str) -> str:
    return RUBRIC_PROMPT.format(
        question=question.question, reference=question.reference_answer, response=response
    )


def read_choice(question: ClosedQuestion, reply: str | None) -> Extraction:
    """The judge's reply read by the strict rules ("X" or a hedge is a parse failure)."""
    extraction = Extractor(question.options).extract(reply)
    return Extraction(extraction.letter, extraction.status, "llm judge: " + extraction.rule)


def read_score(reply: str | None) -> float | None:
    """0..1 from "Score: N" (N in 0..5); None when the reply has no score."""
    match = _SCORE.search((reply or "").strip())
    if not match:
        return None
    return int(match.group(1) or match.group(2)) / 5.0


class Judge:
    """Asks one model many prompts, concurrently, through the answer cache."""

    def __init__(self, spec: str, cache_path: Path, concurrency: int = 8) -> None:
        self.spec = spec
        self.cache_path = cache_path
        self.concurrency = concurrency
        self.calls = 0

    def ask(self, prompts: dict[str, str], max_tokens: int = 64) -> dict[str, str | None]:
        """id -> reply text (None where the call failed)."""
        if not prompts:
            return {}
        return asyncio.run(self._ask_all(prompts, max_tokens))

    async def _ask_all(self, prompts: dict[str, str], max_tokens: int) -> dict[str, str | None]:
        cache = AnswerCache(self.cache_path)
        model = make_bench_model(self.spec, {"concurrency": self.concurrency})
        gate = asyncio.Semaphore(self.concurrency)
        replies: dict[str, str | None] = {}

        async def one(key_id: str, prompt: str) -> None:
            key = answer_key("judge:" + self.spec, prompt, [], max_tokens, 0.0)
            hit = cache.get(key)
            if hit is not None:
                replies[key_id] = hit["response"]
                return
            async with gate:
                self.calls += 1
                request = BenchRequest(key_id, prompt, [], "closed", max_tokens=max_tokens)
                answer = await model.answer(request)
            if answer.error:
                replies[key_id] = None
                return
            cache.put(
                key,
                self.spec,
                answer.text,
                answer.input_tokens,
                answer.output_tokens,
                answer.cost_usd,
            )
            replies[key_id] = answer.text

        try:
            await asyncio.gather(*(one(k, p) for k, p in prompts.items()))
        finally:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
            cache.close()
        return replies
