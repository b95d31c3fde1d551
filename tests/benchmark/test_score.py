"""`bench score`: metrics.json, results, report and plots; leaderboard; audit; the judges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from neuroonco.benchmark.files import load_bench
from neuroonco.benchmark.score import ScoreOptions, score_bench
from neuroonco.errors import ConfigError
from tests.benchmark.conftest import OFFICIAL_CLOSED
from tests.benchmark.test_runner import point_at
from tests.support.text_loopback import TextLoopbackServer, prompt_of

CONTRACT = (
    "n",
    "accuracy",
    "accuracy_by_type",
    "answerable_accuracy",
    "trap_recall",
    "over_refusal",
    "parse_failure_rate",
)


def write_predictions(path: Path, model: str, responses: dict[str, str]) -> Path:
    with path.open("w") as handle:
        for qid, response in responses.items():
            handle.write(json.dumps({"question_id": qid, "response": response, "model": model}))
            handle.write("\n")
    return path


def test_report_metrics_and_plots(small_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(small_bench / "closed.json")
    right = write_predictions(
        tmp_path / "a.jsonl", "openai:right", {q.question_id: q.answer for q in bench.closed}
    )
    half = write_predictions(
        tmp_path / "b.jsonl", "ollama:half", {q.question_id: "A" for q in bench.closed}
    )
    out = tmp_path / "report"
    metrics = score_bench(bench, [right, half], out, ScoreOptions(resamples=100))
    saved = json.loads((out / "metrics.json").read_text())
    assert all(key in saved for key in CONTRACT)
    assert saved["model"] == "openai:right" and saved["accuracy"] == 1.0
    assert set(saved["models"]) == {
        "openai:right",
        "ollama:half",
        "baseline:random",
        "baseline:refuse",
        "baseline:prior",
    }
    board = [row["model"] for row in metrics["leaderboard"]]
    assert board[0] == "openai:right"
    assert saved["models"]["ollama:half"]["all"]["accuracy"] == pytest.approx(3 / 7)
    refuse = saved["models"]["baseline:refuse"]["all"]
    assert refuse["trap_recall"] == 1.0 and refuse["answerable_accuracy"] == 0.0
    lines = (out / "results" / "openai_right.jsonl").read_text().splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["correct"] is True
    report = (out / "report.md").read_text()
    assert "baseline:prior *(baseline)*" in report and "plots/accuracy_by_type.png" in report
    for name in (
        "accuracy_by_type",
        "trap_vs_refusal",
        "confusion_openai_right",
        "confusion_ollama_half",
    ):
        with Image.open(out / "plots" / f"{name}.png") as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            colours = image.convert("L").getcolors(maxcolors=1 << 16) or []
            assert len(colours) > 10  # something was drawn


def test_open_report(small_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(small_bench / "open.json")
    pred = write_predictions(
        tmp_path / "o.jsonl",
        "openai:x",
        {
            "1_q1": "The glioma is lobulated, not irregular.",
            "1_q2": "Left frontal, without enhancement.",
        },
    )
    metrics = score_bench(bench, [pred], tmp_path / "r", ScoreOptions(resamples=50))
    # 1_q1: glioma, lobulated found, irregular negated -> 2/3; 1_q2: all three (enhancement
    # negated in the reference too) -> 1.
    assert metrics["keyword_recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["keyword_leak"]["leaked"] == 1  # "glioma" is in 1_q1's question
    assert (tmp_path / "r" / "plots" / "open_by_type.png").stat().st_size > 1000


def test_audit_reports_all_and_sound(small_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(small_bench / "closed.json")
    # The model picks the respelled removed answer on trap 1_q2 and one of two spellings on
    # 2_q2: both "wrong" only because the questions are broken. Everything else right.
    responses = {q.question_id: q.answer for q in bench.closed}
    responses["1_q2"] = "A"
    responses["2_q2"] = "B"
    pred = write_predictions(tmp_path / "p.jsonl", "openai:x", responses)
    audit = {
        "version": 1,
        "bench": str(small_bench / "closed.json"),
        "n_questions": 7,
        "counts": {"trap_answer_still_offered": 1, "duplicate_concept_options": 1},
        "findings": [],
        "unsound": {
            "1_q2": ["trap_answer_still_offered"],
            "2_q2": ["duplicate_concept_options"],
            "999_q1": ["duplicate_question"],
        },
    }
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    metrics = score_bench(
        bench, [pred], tmp_path / "r", ScoreOptions(resamples=50, audit=tmp_path / "audit.json")
    )
    assert metrics["accuracy"] == pytest.approx(5 / 7)
    assert metrics["sound"]["accuracy"] == 1.0 and metrics["sound"]["n"] == 5
    assert metrics["trap_recall"] == 0.5 and metrics["sound"]["trap_recall"] == 1.0
    assert metrics["audit"]["excluded"] == 2 and metrics["audit"]["not_in_bench"] == 1
    assert metrics["audit"]["by_kind"] == {
        "duplicate_concept_options": 1,
        "trap_answer_still_offered": 1,
    }
    assert "sound" in metrics["models"]["baseline:random"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert "2 questions excluded as unsound" in report


def test_choice_judge_reads_what_rules_cannot_and_is_reported_apart(
    small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench(small_bench / "closed.json")
    responses = {q.question_id: q.answer for q in bench.closed}
    responses["1_q1"] = "This looks like a glial tumour to me."  # no option named
    responses["2_q1"] = "Hmm, hard to tell."  # the judge will hedge too
    pred = write_predictions(tmp_path / "p.jsonl", "openai:x", responses)

    def judge(body: dict) -> str:
        return "A" if "glial tumour" in prompt_of(body) else "X"

    with TextLoopbackServer(text_responder=judge) as server:
        point_at(server, monkeypatch)
        options = ScoreOptions(resamples=0, judge="openai:judge-model")
        metrics = score_bench(bench, [pred], tmp_path / "r", options)
        assert len(server.chat_requests()) == 2
        score_bench(bench, [pred], tmp_path / "r2", options)
        assert len(server.chat_requests()) == 2  # cached
    assert metrics["accuracy"] == pytest.approx(5 / 7)  # strict reading unchanged
    judged = metrics["with_judge"]
    assert judged["asked"] == 2 and judged["rescued"] == 1 and judged["still_failed"] == 1
    assert judged["accuracy"] == pytest.approx(6 / 7)


def test_rubric_judge(small_bench: Path, tmp_path: Path, monkeypatch) -> None:
    bench = load_bench(small_bench / "open.json")
    pred = write_predictions(tmp_path / "o.jsonl", "openai:x", {"1_q1": "lobulated glioma"})
    with TextLoopbackServer(text_responder=lambda body: "Score: 4") as server:
        point_at(server, monkeypatch)
        metrics = score_bench(
            bench,
            [pred],
            tmp_path / "r",
            ScoreOptions(resamples=0, rubric_judge="ollama:qwen2.5vl:7b"),
        )
    assert metrics["rubric"] == pytest.approx((0.8 + 0.0) / 2)  # 1_q2 missing scores 0


def test_predictions_for_another_benchmark_are_refused(small_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(small_bench / "closed.json")
    pred = write_predictions(tmp_path / "p.jsonl", "x", {"nope_q1": "A"})
    with pytest.raises(ConfigError, match="wrong benchmark file"):
        score_bench(bench, [pred], tmp_path / "r", ScoreOptions(resamples=0))


@pytest.mark.slow
def test_official_closed_file_scores_with_baselines(tmp_path: Path) -> None:
    bench = load_bench(OFFICIAL_CLOSED)
    pred = write_predictions(
        tmp_path / "p.jsonl", "openai:perfect", {q.question_id: q.answer for q in bench.closed}
    )
    metrics = score_bench(bench, [pred], tmp_path / "r", ScoreOptions(resamples=200))
    assert metrics["n"] == 3190 and metrics["accuracy"] == 1.0 and metrics["n_trap"] == 606
    refuse = metrics["models"]["baseline:refuse"]["all"]
    assert refuse["accuracy"] == pytest.approx(606 / 3190)
