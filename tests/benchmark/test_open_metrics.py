"""Open-question metrics on hand-computed cases, and the keyword leak of the official file."""

from __future__ import annotations

import pytest

from neuroonco.benchmark.files import OpenQuestion, load_bench
from neuroonco.benchmark.open_metrics import (
    keyword_found,
    leaked,
    mentions,
    open_metrics,
    rouge_l,
    score_open,
    token_f1,
)
from tests.benchmark.conftest import OFFICIAL_OPEN, needs_official


@pytest.mark.parametrize(
    ("text", "keyword", "negated"),
    [
        ("The mass is lobulated.", "lobulated", [False]),
        ("The mass is not lobulated.", "lobulated", [True]),
        ("There is no enhancement.", "enhancement", [True]),
        ("No evidence of contrast enhancement.", "enhancement", [True]),
        ("A non-enhancing lesion", "enhancement", [True]),  # stems: enhancing ~ enhancement
        ("Without surrounding oedema, but with ring enhancement", "enhancement", [False]),
        ("It is not small, it is large", "large", [False]),
        ("Neither lobulated nor irregular", "irregular", [True]),
        ("Lobulated margins; lobulated again", "lobulated", [False, False]),
        ("Nothing here", "glioma", []),
    ],
)
def test_negation_of_mentions(text: str, keyword: str, negated: list[bool]) -> None:
    assert mentions(text, keyword) == negated


def test_keyword_polarity_follows_the_reference() -> None:
    reference = "The lesion is not perfectly round, with lobulated margins."
    assert keyword_found("A lobulated mass.", reference, "lobulated")
    assert not keyword_found("Not lobulated at all.", reference, "lobulated")
    # The reference negates `round`: only a response that negates it too has it right.
    assert keyword_found("It is not round.", reference, "round")
    assert not keyword_found("It is round.", reference, "round")


def test_token_f1_hand_computed() -> None:
    # tokens: pred [large, lesion, left] ref [lesion, left, frontal, lobe]: common 2
    assert token_f1("A large lesion, left.", "The lesion: left frontal lobe") == pytest.approx(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)
    )
    assert token_f1("glioma", "glioma") == 1.0
    assert token_f1("", "glioma") == 0.0


def test_rouge_l_hand_computed() -> None:
    # LCS of "the lesion is large" and "the large lesion is round": the lesion is (3 tokens)
    precision, recall = 3 / 4, 3 / 5
    expected = 2 * precision * recall / (precision + recall)
    assert rouge_l("the lesion is large", "the large lesion is round") == pytest.approx(expected)
    assert rouge_l("", "anything") == 0.0


def test_leaked_keywords_are_flagged_and_excluded() -> None:
    q = OpenQuestion(
        "1_q1",
        "1",
        "x.png",
        "Detail",
        "Describe the glioma lesion margins.",
        "The glioma is lobulated and irregular.",
        ("glioma", "lobulated", "irregular"),
    )
    assert leaked(q.question, "glioma") and not leaked(q.question, "lobulated")
    [r] = score_open([q], {("1_q1", 0): {"response": "A glioma, not lobulated."}})
    assert r.leaked_keywords == ["glioma"]
    assert r.found_keywords == ["glioma"]
    assert r.keyword_recall == pytest.approx(1 / 3)
    assert r.keyword_recall_unleaked == 0.0
    m = open_metrics([r], resamples=0)
    assert m["keyword_leak"]["share"] == pytest.approx(1 / 3)
    assert m["keyword_leak"]["questions_with_leak"] == 1


def test_missing_and_errors_score_zero(small_bench) -> None:
    bench = load_bench(small_bench / "open.json")
    predictions = {("1_q1", 0): {"response": "", "error": "timeout"}}
    results = score_open(bench.open, predictions)
    assert [r.status for r in results] == ["error", "missing"]
    assert all(r.keyword_recall == 0 and r.token_f1 == 0 and r.rouge_l == 0 for r in results)


@needs_official
def test_official_open_file_has_about_a_third_of_keywords_in_the_question() -> None:
    bench = load_bench(OFFICIAL_OPEN)
    results = score_open(bench.open, {})
    m = open_metrics(results, resamples=0)
    assert m["n"] == 1215
    assert 0.28 < m["keyword_leak"]["share"] < 0.36


def test_scoring_does_not_configure_the_root_logger():
    """rouge-score logs through absl, whose first record calls logging.basicConfig(): every
    library's warnings (pydicom's "found implicit VR"...) would then reach the terminal."""
    import subprocess
    import sys

    code = (
        "import logging, neuroonco.cli\n"
        "from neuroonco.benchmark.open_metrics import rouge_l\n"
        "assert rouge_l('a round mass', 'round mass') > 0\n"
        "print(len(logging.getLogger().handlers))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0" and out.stderr == ""
