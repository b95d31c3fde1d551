"""The reference rows scored beside every model: baseline:random, baseline:refuse, baseline:prior.

- random: a letter drawn uniformly from the question's options, seeded by (seed, question id), so a
  re-run gives the same picks. On open questions: the reference answer of another question of the
  same type (again seeded): fluent text that knows nothing about this image.
- refuse: always the refusal option ("None of the above"; the letter, or the words when a question
  offers none); on open questions a fixed "cannot determine" sentence.
- prior: the answer most often right for the question's type across the benchmark (the option text
  most often right; if this question does not offer it, the letter most often right for the type).
  On open questions: the five keywords most often expected for the type.

They answer from the questions themselves (no image, no network), so `bench score` can put their
rows beside every model without a run.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from neuroonco.benchmark.files import ClosedQuestion, OpenQuestion, Question
from neuroonco.benchmark.models import BenchAnswer, BenchRequest
from neuroonco.errors import ConfigError

KINDS = ("random", "refuse", "prior")
OPEN_REFUSAL = "I cannot determine this from the image."
REFUSAL_WORDS = "None of the above"


def _rng(seed: int, question_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{question_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Baseline:
    """A baseline answering every question of one benchmark without looking at images."""

    # `bench run` resolves no images for it (the official files ship none) and caches nothing
    # (free, and baseline:random keys on the question id, not the prompt).
    needs_images = False
    cacheable = False

    def __init__(self, kind: str, questions: Sequence[Question], seed: int = 0) -> None:
        if kind not in KINDS:
            raise ConfigError(
                f"unknown baseline {kind!r}: use baseline:random, baseline:refuse or baseline:prior"
            )
        self.kind = kind
        self.spec = f"baseline:{kind}"
        self.seed = seed
        closed = [q for q in questions if isinstance(q, ClosedQuestion)]
        opened = [q for q in questions if isinstance(q, OpenQuestion)]
        self._prior_text: dict[str, str] = {}
        self._prior_letter: dict[str, str] = {}
        texts: dict[str, Counter[str]] = defaultdict(Counter)
        letters: dict[str, Counter[str]] = defaultdict(Counter)
        for q in closed:
            texts[q.question_type][q.answer_text.strip().lower()] += 1
            letters[q.question_type][q.answer] += 1
        for qtype, counts in texts.items():
            # Ties break on the text itself so the prior does not depend on file order.
            self._prior_text[qtype] = min(counts, key=lambda t, c=counts: (-c[t], t))
            lc = letters[qtype]
            self._prior_letter[qtype] = min(lc, key=lambda t, c=lc: (-c[t], t))
        self._references: dict[str, list[tuple[str, str]]] = defaultdict(list)
        keywords: dict[str, Counter[str]] = defaultdict(Counter)
        for q in opened:
            self._references[q.question_type].append((q.question_id, q.reference_answer))
            keywords[q.question_type].update(w.lower() for w in q.eval_keywords)
        self._prior_keywords = {
            t: ", ".join(w for w, _ in sorted(c.items(), key=lambda x: (-x[1], x[0]))[:5])
            for t, c in keywords.items()
        }

    def respond(self, question_id: str, qtype: str | None, options: dict[str, str] | None) -> str:
        """The baseline's raw response text to one question."""
        if options is None:
            return self._respond_open(question_id, qtype or "")
        if self.kind == "random":
            return _rng(self.seed, question_id).choice(sorted(options))
        if self.kind == "refuse":
            from neuroonco.benchmark.files import is_refusal_text

            refusal = [k for k, t in options.items() if is_refusal_text(t)]
            return refusal[0] if refusal else REFUSAL_WORDS
        prior = self._prior_text.get(qtype or "")
        for letter, text in options.items():
            if prior is not None and text.strip().lower() == prior:
                return letter
        letter = self._prior_letter.get(qtype or "")
        return letter if letter in options else sorted(options)[0]

    def _respond_open(self, question_id: str, qtype: str) -> str:
        if self.kind == "refuse":
            return OPEN_REFUSAL
        if self.kind == "prior":
            return self._prior_keywords.get(qtype, "")
        others = [ref for qid, ref in self._references.get(qtype, []) if qid != question_id]
        return _rng(self.seed, question_id).choice(others) if others else ""

    def respond_to(self, question: Question) -> str:
        options = question.options if isinstance(question, ClosedQuestion) else None
        return self.respond(question.question_id, question.question_type, options)

    async def answer(self, request: BenchRequest) -> BenchAnswer:
        text = self.respond(request.question_id, request.question_type, request.options)
        return BenchAnswer(text=text, cost_usd=0.0)

    async def aclose(self) -> None:
        return None


def make_baseline(spec: str, options: dict[str, Any]) -> Baseline:
    """Factory for `baseline:KIND` specs; `options["questions"]` are the benchmark's questions."""
    kind = spec.partition(":")[2].strip().lower()
    return Baseline(kind, options.get("questions") or [], int(options.get("seed", 0)))
