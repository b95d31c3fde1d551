"""The bench model registry: built-in prefixes, a plugged-in prefix, clear errors."""

from __future__ import annotations

import asyncio

import pytest

from neuroonco.benchmark.baselines import Baseline
from neuroonco.benchmark.files import load_bench
from neuroonco.benchmark.models import (
    BenchAnswer,
    BenchRequest,
    make_bench_model,
    register_bench_model,
    registered_prefixes,
)
from neuroonco.errors import ConfigError
from tests.benchmark.conftest import OFFICIAL_CLOSED


def test_builtin_prefixes() -> None:
    assert {"openai", "anthropic", "ollama", "baseline", "transformers"} <= set(
        registered_prefixes()
    )


def test_a_registered_factory_builds_the_model() -> None:
    class Echo:
        def __init__(self, spec: str, options: dict) -> None:
            self.spec, self.options = spec, options

        async def answer(self, request: BenchRequest) -> BenchAnswer:
            return BenchAnswer(text=f"{self.spec} {request.question_id}")

    register_bench_model("echo", Echo)
    model = make_bench_model("echo:x", {"concurrency": 3})
    answer = asyncio.run(model.answer(BenchRequest("1_q1", "p", [], "closed")))
    assert answer.text == "echo:x 1_q1" and model.options == {"concurrency": 3}


def test_unknown_spec_names_the_prefixes() -> None:
    with pytest.raises(ConfigError, match=r"use one of .*baseline:\.\.\..*openai:\.\.\."):
        make_bench_model("nope:model")
    with pytest.raises(ConfigError, match="baseline:random"):
        make_bench_model("baseline:oracle")


def test_openai_without_key_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY or pass --model baseline:prior"):
        make_bench_model("openai:gpt-4o-mini")


def test_baselines_on_the_official_file() -> None:
    questions = load_bench(OFFICIAL_CLOSED).closed
    refuse, prior = Baseline("refuse", questions), Baseline("random", questions)
    first = questions[0]
    assert refuse.respond_to(first) == "E"
    two = next(q for q in questions if len(q.options) == 2)
    assert refuse.respond_to(two) == "None of the above"
    picks = {prior.respond_to(first) for _ in range(5)}
    assert len(picks) == 1  # seeded by question id


def test_prior_baseline_hand_computed(small_bench) -> None:
    questions = load_bench(small_bench / "closed.json").closed
    prior = Baseline("prior", questions)
    by_id = {q.question_id: prior.respond_to(q) for q in questions}
    # diagnosis: glioma, meningioma, healthy once each -> "glioma" (ties: alphabetical);
    # 3_q1 does not offer it -> the letter most often right for diagnosis (A, twice).
    assert by_id["1_q1"] == "A" and by_id["2_q1"] == "A" and by_id["3_q1"] == "A"
    # modality: "none of the above" and "t2" once each -> the refusal option.
    assert by_id["1_q2"] == "E" and by_id["3_q2"] == "E"
