"""Optional paraphrase of open answers by a model, kept only when no fact changed.

Templates make answers monotonous; a model can reword them, but a reworded answer must still state
every finding (its keywords), add none (no other vocabulary value appears), keep every number, and
flip no negation (the same count of no/not/without/none). A paraphrase that fails any check, or a
call that fails, leaves the template's text: the set never loses an instruction to a model.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from pydantic import BaseModel, Field

from neuroonco.finetune.records import Instruction
from neuroonco.finetune.templates import keyword
from neuroonco.schemas.vocabulary import FIELDS

_NEGATIONS = re.compile(r"\b(no|not|without|none|absent|neither|nor|never)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?%?")
_VOCABULARY_WORDS = sorted(
    {keyword(f, m.value) for f, enum in FIELDS.items() if f != "modality" for m in enum},
    key=len,
    reverse=True,
)


class Paraphrase(BaseModel):
    text: str = Field(description="The answer reworded: same facts, numbers and negations.")


def paraphrase_problem(original: str, candidate: str, keywords: list[str]) -> str | None:
    """Why ``candidate`` does not say exactly what ``original`` says, or None when it does."""
    before, after = original.lower(), candidate.lower()
    if not after.strip():
        return "empty"
    missing = [k for k in keywords if k.lower() not in after]
    if missing:
        return f"drops {', '.join(missing)}"
    if Counter(_NUMBER.findall(before)) != Counter(_NUMBER.findall(after)):
        return "changes a number"
    if len(_NEGATIONS.findall(before)) != len(_NEGATIONS.findall(after)):
        return "changes a negation"
    for word in _VOCABULARY_WORDS:
        pattern = rf"\b{re.escape(word)}\b"
        if re.search(pattern, after) and not re.search(pattern, before):
            return f"adds {word!r}"
    return None


class Paraphraser:
    """Rewords open answers with the model ``spec`` (any provider spec)."""

    SYSTEM = (
        "You reword radiology answers. Keep every finding, number and negation exactly; add "
        "nothing. Reply with the reworded text only."
    )

    def __init__(self, spec: str, provider=None) -> None:
        from neuroonco.agents.providers.registry import make_provider

        self.spec = spec
        self.provider = provider or make_provider(spec)
        self._loop = asyncio.new_event_loop()
        self.counts: Counter = Counter()

    def apply(self, ins: Instruction, item=None) -> Instruction:
        """``ins`` with its answer reworded, or ``ins`` itself when the paraphrase failed or
        changed a fact."""
        from neuroonco.agents.providers.base import ModelRequest

        request = ModelRequest(
            role="paraphraser",
            system=self.SYSTEM,
            prompt=f"Reword this answer:\n{ins.answer}",
            response_model=Paraphrase,
            temperature=0.7,
            max_tokens=512,
        )
        try:
            result = self._loop.run_until_complete(self.provider.complete(request))
        except Exception:  # a model failure costs the paraphrase, never the instruction
            self.counts["failed"] += 1
            return ins
        if not result.ok:
            self.counts["failed"] += 1
            return ins
        text = result.output.text.strip()
        if paraphrase_problem(ins.answer, text, ins.keywords) is not None:
            self.counts["rejected"] += 1
            return ins
        self.counts["accepted"] += 1
        return ins.replace(answer=text, response=text, paraphrased=True)

    def summary(self) -> dict:
        return {
            "spec": self.spec,
            **{k: self.counts.get(k, 0) for k in ("accepted", "rejected", "failed")},
        }

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.provider.aclose())
        finally:
            self._loop.close()
