"""Open-question scoring: keyword recall that respects negation, token F1 and ROUGE-L.

Keyword recall: a reference keyword is found when the response mentions it (word stems compared
with the Porter stemmer, so "enhancing" finds "enhancement") with the polarity the reference gives
it. A mention is negated when a negation cue ("no", "not", "without", "absence of", "non-",
"neither"/"nor"...) stands up to five words before it in the same clause (clauses end at
`. , ; : ! ?` and at "but", "however", "although", "whereas", "while"). So "not lobulated" does
not find `lobulated`; and where the reference itself says "not perfectly round", the keyword
`round` is found only by a response that also negates it.

A keyword that already appears in the question is "leaked": a model can copy it without looking
at the image. Leaked keywords are flagged per question, counted, and `keyword_recall_unleaked`
is the recall over the other keywords.

Token F1 is SQuAD's (lowercase, punctuation and articles removed, bag of tokens); ROUGE-L is the
rouge-score package's F-measure with stemming. A missing prediction or a run error scores 0.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from neuroonco.benchmark.files import OpenQuestion
from neuroonco.benchmark.metrics import mean_ci

NEGATION_CUES = frozenset(
    {
        "no",
        "not",
        "without",
        "absent",
        "absence",
        "lack",
        "lacks",
        "lacking",
        "non",
        "neither",
        "nor",
        "never",
        "none",
        "free",
        "negative",
        "isn't",
        "aren't",
        "doesn't",
        "don't",
        "cannot",
        "excluded",
        "exclude",
        "excludes",
        "rules",
        "ruled",
        "nothing",
    }
)
CLAUSE_BREAKS = frozenset({"but", "however", "although", "whereas", "while", "yet", "though"})
NEGATION_WINDOW = 5
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,;:!?]")


# nltk and rouge-score take seconds to import: they load on the first open answer scored, not
# with every `neuroonco` command.
@functools.cache
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@functools.cache
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    # rouge-score logs through absl, whose first record calls logging.basicConfig(): a root
    # handler that would print every library's warnings (pydicom's...) on the terminal. A
    # placeholder handler while the scorer is built makes basicConfig a no-op.
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    finally:
        if guard is not None:
            root.removeHandler(guard)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower().replace("-", " ").replace("_", " "))


def mentions(text: str, keyword: str) -> list[bool]:
    """One entry per mention of `keyword` in `text`: True where the mention is negated."""
    tokens = _tokens(text)
    stems = [_stem(t) for t in tokens]
    target = [_stem(t) for t in _tokens(keyword) if t not in ".,;:!?"]
    if not target:
        return []
    found = []
    for i in range(len(stems) - len(target) + 1):
        if stems[i : i + len(target)] != target:
            continue
        negated = False
        for j in range(i - 1, max(-1, i - 1 - NEGATION_WINDOW), -1):
            word = tokens[j]
            if word in ".,;:!?" or word in CLAUSE_BREAKS:
                break
            if word in NEGATION_CUES:
                negated = True
                break
        found.append(negated)
    return found


def polarity(text: str, keyword: str) -> str | None:
    """ "affirmed" if any mention is not negated, "negated" if all are, None if not mentioned."""
    marks = mentions(text, keyword)
    if not marks:
        return None
    return "negated" if all(marks) else "affirmed"


def keyword_found(response: str, reference: str, keyword: str) -> bool:
    """Whether the response states the keyword the way the reference does (see module doc)."""
    expected = polarity(reference, keyword) or "affirmed"
    marks = mentions(response, keyword)
    return any(m == (expected == "negated") for m in marks)


def leaked(question: str, keyword: str) -> bool:
    """Whether a reference keyword already appears in the question."""
    return bool(mentions(question, keyword))


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def _squad_tokens(text: str) -> list[str]:
    text = _PUNCT.sub(" ", text.lower())
    return _ARTICLES.sub(" ", text).split()


def token_f1(response: str, reference: str) -> float:
    """SQuAD token F1 between a response and the reference answer."""
    pred, ref = _squad_tokens(response), _squad_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(response: str, reference: str) -> float:
    """ROUGE-L F-measure (rouge-score, Porter stemming)."""
    if not response.strip():
        return 0.0
    return float(_rouge().score(reference, response)["rougeL"].fmeasure)


@dataclass
class OpenResult:
    """One open question scored."""

    question_id: str
    question_type: str
    status: str  # answered | error | missing
    keyword_recall: float | None
    keyword_recall_unleaked: float | None
    token_f1: float
    rouge_l: float
    keywords: list[str] = field(default_factory=list)
    found_keywords: list[str] = field(default_factory=list)
    leaked_keywords: list[str] = field(default_factory=list)
    rubric: float | None = None  # the rubric judge's 0..1 score, when asked
    response: str | None = None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def score_open_one(question: OpenQuestion, row: dict[str, Any] | None) -> OpenResult:
    keywords = list(dict.fromkeys(question.eval_keywords))
    leaks = [k for k in keywords if leaked(question.question, k)]
    status = "missing" if row is None else ("error" if row.get("error") else "answered")
    response = "" if status != "answered" else str(row.get("response") or "")
    found = [k for k in keywords if keyword_found(response, question.reference_answer, k)]
    unleaked = [k for k in keywords if k not in leaks]
    return OpenResult(
        question_id=question.question_id,
        question_type=question.question_type,
        status=status,
        keyword_recall=len(found) / len(keywords) if keywords else None,
        keyword_recall_unleaked=(
            sum(k in found for k in unleaked) / len(unleaked) if unleaked else None
        ),
        token_f1=token_f1(response, question.reference_answer),
        rouge_l=rouge_l(response, question.reference_answer),
        keywords=keywords,
        found_keywords=found,
        leaked_keywords=leaks,
        response=None if row is None else row.get("response"),
    )


def score_open(
    questions: list[OpenQuestion], predictions: dict[tuple[str, int], dict[str, Any]]
) -> list[OpenResult]:
    return [score_open_one(q, predictions.get((q.question_id, 0))) for q in questions]


METRICS = ("keyword_recall", "keyword_recall_unleaked", "token_f1", "rouge_l", "rubric")


def open_metrics(results: list[OpenResult], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Means (with bootstrap 95% intervals) overall and by question type, and the leak counts."""
    rng = np.random.default_rng(seed)
    m: dict[str, Any] = {"n": len(results)}
    for name in METRICS:
        values = np.array([v for r in results if (v := getattr(r, name)) is not None], float)
        if name == "rubric" and values.size == 0:
            continue
        m[name], m[name + "_ci"] = mean_ci(values, resamples, rng)
        by: dict[str, list[float]] = defaultdict(list)
        for r in results:
            value = getattr(r, name)
            if value is not None:
                by[r.question_type].append(value)
        m[name + "_by_type"] = {t: float(np.mean(v)) for t, v in sorted(by.items())}
    n_keywords = sum(len(r.keywords) for r in results)
    n_leaked = sum(len(r.leaked_keywords) for r in results)
    with_leak = sum(1 for r in results if r.leaked_keywords)
    m["keyword_leak"] = {
        "keywords": n_keywords,
        "leaked": n_leaked,
        "share": n_leaked / n_keywords if n_keywords else None,
        "questions_with_leak": with_leak,
        "questions_share": with_leak / len(results) if results else None,
    }
    status = Counter(r.status for r in results)
    m["error_rate"] = status["error"] / len(results) if results else None
    m["missing"] = status["missing"]
    return m
