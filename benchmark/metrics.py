"""Closed-question scoring: per-question results, then the metrics of DESIGN.md and more.

Per question (`score_closed`): the option extracted from the response (benchmark/extract.py), and
whether it is right. A response that cannot be read, an abstention, a run error and a missing
prediction all count as wrong: the denominators are always every question of the file.

Metrics (`closed_metrics`), each with a percentile-bootstrap 95% interval over questions:
- `accuracy`: right / all questions; `accuracy_by_type`, `accuracy_by_diagnosis` (a question's
  diagnosis is its record's: the diagnosis question's right answer, the original one on a trap);
- `answerable_accuracy`: over non-trap questions; `trap_recall`: share of traps answered with the
  refusal option (which is their right answer); `over_refusal`: share of answerable questions
  answered with the refusal option (or "none of the above" in words);
- `balanced_accuracy`: mean of answerable accuracy and trap recall, so a model cannot win by always
  refusing or never refusing;
- `rejection_precision`: of the refusals, the share made on traps;
- `effective_reliability`: mean of +1 right, 0 refused (an answerable question answered with the
  refusal option), -1 otherwise (wrong, unreadable, abstained, missing);
- `parse_failure_rate` (ambiguous, no option, empty, abstention), `abstention_rate` (the share of
  abstentions alone), `error_rate` (run errors), `missing` (questions without a prediction).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neuroonco.benchmark.extract import PARSE_FAILURES, Extraction, Extractor
from neuroonco.benchmark.files import ClosedQuestion, rotations

NO_ANSWER_LABEL = "(no answer)"
REFUSED_LABEL = "None of the above"


@dataclass
class ClosedResult:
    """One closed question scored."""

    question_id: str
    question_type: str
    diagnosis: str
    trap: bool
    answer: str
    letter: str | None
    status: str  # extract STATUSES, or "error" / "missing"
    rule: str
    correct: bool
    refused: bool
    true_value: str
    predicted_value: str
    response: str | None = None
    judged: bool = False

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def record_diagnoses(questions: Iterable[ClosedQuestion]) -> dict[str, str]:
    """Record id -> its diagnosis (the true value of its diagnosis question)."""
    found: dict[str, str] = {}
    for q in questions:
        if q.question_type.lower() == "diagnosis" and q.record_id not in found:
            found[q.record_id] = q.true_value.strip().lower().replace("_", " ")
    return found


def _result(
    q: ClosedQuestion, diagnosis: str, row: dict[str, Any] | None, extraction: Extraction | None
) -> ClosedResult:
    if row is None:
        status, rule, letter = "missing", "no prediction", None
    elif row.get("error"):
        status, rule, letter = "error", str(row["error"])[:200], None
    else:
        assert extraction is not None
        status, rule, letter = extraction.status, extraction.rule, extraction.letter
    refused = status == "refused"
    if letter is not None:
        predicted = q.options[letter]
    else:
        predicted = REFUSED_LABEL if refused else NO_ANSWER_LABEL
    return ClosedResult(
        question_id=q.question_id,
        question_type=q.question_type,
        diagnosis=diagnosis,
        trap=q.trap,
        answer=q.answer,
        letter=letter,
        status=status,
        rule=rule,
        correct=letter is not None and letter == q.answer,
        refused=refused,
        true_value=q.true_value,
        predicted_value=predicted,
        response=None if row is None else row.get("response"),
    )


def score_closed(
    questions: list[ClosedQuestion],
    predictions: dict[tuple[str, int], dict[str, Any]],
    judge: Callable[[ClosedQuestion, str], Extraction | None] | None = None,
) -> list[ClosedResult]:
    """Score every question (rotation 0) from predictions keyed by (question_id, rotation).

    `judge(question, response)` is asked only about parse failures; what it reads replaces the
    strict reading (marked `judged`), and its own failures stay wrong.
    """
    diagnoses = record_diagnoses(questions)
    results = []
    for q in questions:
        row = predictions.get((q.question_id, 0))
        extraction = None
        if row is not None and not row.get("error"):
            extraction = Extractor(q.options).extract(row.get("response"))
        result = _result(q, diagnoses.get(q.record_id, "unknown"), row, extraction)
        if judge is not None and extraction is not None and extraction.parse_failure:
            judged = judge(q, row.get("response") or "") if row else None
            if judged is not None and not judged.parse_failure:
                result = _result(q, result.diagnosis, row, judged)
                result.judged = True
        results.append(result)
    return results


def circular_correct(
    question: ClosedQuestion, predictions: dict[tuple[str, int], dict[str, Any]]
) -> bool:
    """CircularEval: right only if every rotation was answered and read as its rotated answer."""
    for variant in rotations(question):
        row = predictions.get((question.question_id, variant.rotation))
        if row is None or row.get("error"):
            return False
        if Extractor(variant.options).extract(row.get("response")).letter != variant.answer:
            return False
    return True


# -- statistics ------------------------------------------------------------------------------


def mean_ci(
    values: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float | None, list[float] | None]:
    """Mean and percentile-bootstrap 95% interval (None for an empty sample)."""
    if values.size == 0:
        return None, None
    mean = float(values.mean())
    if resamples <= 0:
        return mean, None
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[idx].mean(axis=1)
    return mean, [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _balanced_ci(
    answerable: np.ndarray, traps: np.ndarray, resamples: int, rng: np.random.Generator
) -> tuple[float | None, list[float] | None]:
    if answerable.size == 0 or traps.size == 0:
        return None, None
    mean = float((answerable.mean() + traps.mean()) / 2)
    if resamples <= 0:
        return mean, None
    # Stratified: each class resampled within itself, as the metric weighs them equally.
    a = answerable[rng.integers(0, answerable.size, (resamples, answerable.size))].mean(axis=1)
    t = traps[rng.integers(0, traps.size, (resamples, traps.size))].mean(axis=1)
    both = (a + t) / 2
    return mean, [float(np.percentile(both, 2.5)), float(np.percentile(both, 97.5))]


def _by(
    results: list[ClosedResult],
    key: Callable[[ClosedResult], str],
    resamples: int,
    rng: np.random.Generator,
) -> tuple[dict[str, float], dict[str, list[float] | None], dict[str, int]]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        groups[key(r)].append(r.correct)
    acc, ci, n = {}, {}, {}
    for name in sorted(groups):
        mean, interval = mean_ci(np.array(groups[name], dtype=float), resamples, rng)
        acc[name], ci[name], n[name] = mean, interval, len(groups[name])
    return acc, ci, n


def confusion(results: list[ClosedResult]) -> dict[str, Any]:
    """Diagnosis confusion matrix: rows the true diagnosis, columns what was answered."""
    pairs = [
        (
            r.true_value.strip().lower().replace("_", " "),
            r.predicted_value.strip().lower().replace("_", " ")
            if r.predicted_value not in (NO_ANSWER_LABEL, REFUSED_LABEL)
            else r.predicted_value,
        )
        for r in results
        if r.question_type.lower() == "diagnosis"
    ]
    rows = [t for t, _ in Counter(t for t, _ in pairs).most_common()]
    cols = list(rows) + sorted({p for _, p in pairs} - set(rows))
    index_r = {t: i for i, t in enumerate(rows)}
    index_c = {p: i for i, p in enumerate(cols)}
    matrix = [[0] * len(cols) for _ in rows]
    for t, p in pairs:
        matrix[index_r[t]][index_c[p]] += 1
    return {"true": rows, "predicted": cols, "matrix": matrix}


def closed_metrics(
    results: list[ClosedResult], resamples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Every closed metric (see the module docstring) over `results`."""
    rng = np.random.default_rng(seed)
    n = len(results)
    correct = np.array([r.correct for r in results], dtype=float)
    is_trap = np.array([r.trap for r in results], dtype=bool)
    refused = np.array([r.refused for r in results], dtype=bool)
    answerable = correct[~is_trap]
    traps = correct[is_trap]
    reliability = np.where(correct == 1, 1.0, np.where(refused & ~is_trap, 0.0, -1.0))
    status = Counter(r.status for r in results)
    m: dict[str, Any] = {
        "n": n,
        "n_answerable": int((~is_trap).sum()),
        "n_trap": int(is_trap.sum()),
    }
    named = {
        "accuracy": correct,
        "answerable_accuracy": answerable,
        "trap_recall": traps,
        "over_refusal": refused[~is_trap].astype(float),
        "rejection_precision": is_trap[refused].astype(float),
        "effective_reliability": reliability,
    }
    for name, values in named.items():
        m[name], m[name + "_ci"] = mean_ci(values, resamples, rng)
    m["balanced_accuracy"], m["balanced_accuracy_ci"] = _balanced_ci(
        answerable, traps, resamples, rng
    )
    m["accuracy_by_type"], m["accuracy_by_type_ci"], m["n_by_type"] = _by(
        results, lambda r: r.question_type, resamples, rng
    )
    m["accuracy_by_diagnosis"], m["accuracy_by_diagnosis_ci"], m["n_by_diagnosis"] = _by(
        results, lambda r: r.diagnosis, resamples, rng
    )
    failures = sum(status[s] for s in PARSE_FAILURES)
    m["parse_failure_rate"] = failures / n if n else None
    m["abstention_rate"] = status["abstained"] / n if n else None
    m["error_rate"] = status["error"] / n if n else None
    m["missing"] = status["missing"]
    m["status_counts"] = dict(sorted(status.items()))
    m["rule_counts"] = dict(
        sorted(Counter(r.rule for r in results if r.letter or r.refused).items())
    )
    m["judged"] = sum(r.judged for r in results)
    m["confusion_diagnosis"] = confusion(results)
    m["bootstrap"] = {"resamples": resamples, "seed": seed, "method": "percentile, 95%"}
    return m
