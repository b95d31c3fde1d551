"""Every closed metric on a hand-computed case (the 7-question bench of conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuroonco.benchmark.files import load_bench, rotations
from neuroonco.benchmark.metrics import (
    circular_correct,
    closed_metrics,
    mean_ci,
    score_closed,
)

# 1_q1 diag (A)  1_q2 modality trap (E)  2_q1 diag (B)  2_q2 size (C)  2_q3 shape trap (E)
# 3_q1 diag, two options (A)  3_q2 modality (A)
RESPONSES = {
    "1_q1": "A",  # right
    "1_q2": "E",  # trap refused: right
    "2_q1": "None of the above",  # answerable refused: over-refusal, reliability 0
    "2_q2": "I'm not sure",  # abstention: parse failure, wrong
    "2_q3": "Answer: A",  # trap answered: wrong
    "3_q1": "B or A",  # hedge: parse failure, wrong
    # 3_q2: no prediction
}


def _predictions(responses: dict[str, str]) -> dict:
    return {(qid, 0): {"question_id": qid, "response": r} for qid, r in responses.items()}


@pytest.fixture
def scored(small_bench: Path):
    bench = load_bench(small_bench / "closed.json")
    return score_closed(bench.closed, _predictions(RESPONSES))


def test_hand_computed_metrics(scored) -> None:
    m = closed_metrics(scored, resamples=200, seed=1)
    assert m["n"] == 7 and m["n_trap"] == 2 and m["n_answerable"] == 5
    assert m["accuracy"] == pytest.approx(2 / 7)
    assert m["answerable_accuracy"] == pytest.approx(1 / 5)
    assert m["trap_recall"] == pytest.approx(1 / 2)
    assert m["over_refusal"] == pytest.approx(1 / 5)
    assert m["rejection_precision"] == pytest.approx(1 / 2)  # refused 1_q2 (trap), 2_q1 (not)
    assert m["effective_reliability"] == pytest.approx((1 + 1 + 0 - 1 - 1 - 1 - 1) / 7)
    assert m["balanced_accuracy"] == pytest.approx((1 / 5 + 1 / 2) / 2)
    assert m["parse_failure_rate"] == pytest.approx(2 / 7)
    assert m["abstention_rate"] == pytest.approx(1 / 7)
    assert m["missing"] == 1 and m["error_rate"] == 0
    assert m["accuracy_by_type"] == pytest.approx(
        {"diagnosis": 1 / 3, "modality": 1 / 2, "size": 0.0, "shape": 0.0}
    )
    assert m["accuracy_by_diagnosis"] == pytest.approx(
        {"glioma": 1.0, "meningioma": 0.0, "healthy": 0.0}
    )
    assert m["status_counts"] == {
        "abstained": 1,
        "ambiguous": 1,
        "answered": 2,
        "missing": 1,
        "refused": 2,
    }
    for key in ("accuracy", "trap_recall", "balanced_accuracy", "effective_reliability"):
        lo, hi = m[key + "_ci"]
        assert lo <= m[key] <= hi


def test_confusion_matrix_of_diagnosis(scored) -> None:
    confusion = closed_metrics(scored, resamples=0)["confusion_diagnosis"]
    cells = {
        (t, p): confusion["matrix"][i][j]
        for i, t in enumerate(confusion["true"])
        for j, p in enumerate(confusion["predicted"])
        if confusion["matrix"][i][j]
    }
    assert cells == {
        ("glioma", "glioma"): 1,
        ("meningioma", "None of the above"): 1,
        ("healthy", "(no answer)"): 1,
    }


def test_errors_count_wrong_and_separately(small_bench: Path) -> None:
    bench = load_bench(small_bench / "closed.json")
    predictions = _predictions({q.question_id: q.answer for q in bench.closed})
    predictions[("1_q1", 0)] = {"question_id": "1_q1", "response": "", "error": "image not found"}
    m = closed_metrics(score_closed(bench.closed, predictions), resamples=0)
    assert m["accuracy"] == pytest.approx(6 / 7)
    assert m["error_rate"] == pytest.approx(1 / 7) and m["parse_failure_rate"] == 0


def test_trap_read_from_meta_trap_not_meta_is_unanswerable(small_bench: Path) -> None:
    records = json.loads((small_bench / "closed.json").read_text())
    records[0]["vqa_pairs"][0]["meta_is_unanswerable"] = True  # the field the official code reads
    (small_bench / "closed.json").write_text(json.dumps(records))
    bench = load_bench(small_bench / "closed.json")
    assert [q.question_id for q in bench.closed if q.trap] == ["1_q2", "2_q3"]


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    values = np.array([1.0, 0.0] * 200)
    mean, (lo, hi) = mean_ci(values, 2000, np.random.default_rng(0))
    assert mean == 0.5
    half = 1.96 * np.sqrt(0.25 / 400)
    assert lo == pytest.approx(0.5 - half, abs=0.01) and hi == pytest.approx(0.5 + half, abs=0.01)
    assert mean_ci(np.ones(10), 100, np.random.default_rng(0)) == (1.0, [1.0, 1.0])
    assert mean_ci(np.array([]), 100, np.random.default_rng(0)) == (None, None)


def test_rotations_keep_refusal_last_and_follow_the_answer(small_bench: Path) -> None:
    q = load_bench(small_bench / "closed.json").closed[0]  # A glioma (right), E refusal
    variants = rotations(q)
    assert len(variants) == 4
    assert [v.options["E"] for v in variants] == ["None of the above"] * 4
    assert [v.answer for v in variants] == ["A", "B", "C", "D"]
    assert all(v.answer_text == "glioma" for v in variants)
    assert variants[1].options == {
        "A": "schwannoma",
        "B": "glioma",
        "C": "meningioma",
        "D": "metastasis",
        "E": "None of the above",
    }
    trap = load_bench(small_bench / "closed.json").closed[1]
    assert {v.answer for v in rotations(trap)} == {"E"}


def test_circular_eval_needs_every_rotation_right(small_bench: Path) -> None:
    q = load_bench(small_bench / "closed.json").closed[0]
    by_text = {(q.question_id, v.rotation): {"response": "glioma"} for v in rotations(q)}
    assert circular_correct(q, by_text)
    always_a = {(q.question_id, v.rotation): {"response": "A"} for v in rotations(q)}
    assert not circular_correct(q, always_a)  # right only on rotation 0
    del by_text[(q.question_id, 2)]
    assert not circular_correct(q, by_text)
