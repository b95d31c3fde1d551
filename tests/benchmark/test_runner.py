"""`bench run` with the real SDK clients against loopback servers: every provider, concurrency,
one line per question, the cache, image errors, retries and resuming after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neuroonco.benchmark.files import load_bench
from neuroonco.benchmark.prompts import OPEN_INSTRUCTION
from neuroonco.benchmark.runner import RunOptions, read_predictions, run_bench
from tests.support.text_loopback import TextLoopbackServer, images_of, prompt_of

SPECS = {
    "openai": "openai:gpt-4o-mini",
    "anthropic": "anthropic:claude-haiku-4-5",
    "ollama": "ollama:qwen2.5vl:7b",
}


def point_at(server: TextLoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SDK's own environment variables aimed at the loopback server."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)  # an OpenAI-compatible server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("OLLAMA_HOST", server.ollama_host)


def answer_letter_b(body: dict) -> str:
    prompt = prompt_of(body)
    return "The answer is B." if "Options:" in prompt else "A lobulated lesion in the left lobe."


@pytest.mark.parametrize("api", sorted(SPECS))
def test_every_provider_answers_every_question(
    api: str, small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TextLoopbackServer(text_responder=answer_letter_b) as server:
        point_at(server, monkeypatch)
        for name in ("closed", "open"):
            out = tmp_path / f"{api}-{name}.jsonl"
            bench = load_bench(small_bench / f"{name}.json")
            summary = run_bench(bench, SPECS[api], out, RunOptions(images_root=small_bench))
            rows = read_predictions(out)
            assert summary.errors == 0 and len(rows) == len(bench.questions)
            assert {r["question_id"] for r in rows} == {q.question_id for q in bench.questions}
            assert all(r["model"] == SPECS[api] and not r["error"] for r in rows)
        requests = server.chat_requests()
        assert all(images_of(r.body) == 1 for r in requests)
        prompts = [prompt_of(r.body) for r in requests]
        closed = [p for p in prompts if "Options:" in p]
        assert len(closed) == 7 and all(
            "Answer with the letter of exactly one" in p for p in closed
        )
        assert any("A. glioma" in p and "E. None of the above" in p for p in closed)
        assert sum(OPEN_INSTRUCTION in p for p in prompts) == 2
        assert not any(r.body.get("tools") or r.body.get("format") for r in requests)  # free text
    rows = read_predictions(tmp_path / f"{api}-closed.jsonl")
    assert {r["response"] for r in rows} == {"The answer is B."}
    assert rows[0]["input_tokens"] == 11 and rows[0]["output_tokens"] == 7


def test_concurrent_cached_and_resumed(
    small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench(small_bench / "closed.json")
    options = RunOptions(images_root=small_bench, concurrency=4)
    with TextLoopbackServer(text_responder=answer_letter_b, latency_s=0.3) as server:
        point_at(server, monkeypatch)
        started = time.perf_counter()
        first = run_bench(bench, SPECS["openai"], tmp_path / "a.jsonl", options)
        elapsed = time.perf_counter() - started
        assert server.max_in_flight == 4 and first.calls == 7
        assert elapsed < 7 * 0.3  # not one at a time
        n = len(server.chat_requests())
        again = run_bench(bench, SPECS["openai"], tmp_path / "a.jsonl", options)
        assert again.skipped == 7 and again.calls == 0
        other = run_bench(bench, SPECS["openai"], tmp_path / "b.jsonl", options)
        assert other.cached == 7 and other.calls == 0
        assert len(server.chat_requests()) == n  # a re-run makes no calls
    assert len(read_predictions(tmp_path / "b.jsonl")) == 7


def test_image_problems_are_recorded_per_question(
    small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = json.loads((small_bench / "closed.json").read_text())
    (tmp_path / "outside.png").write_bytes((small_bench / "glioma/a.png").read_bytes())
    records[1]["image_path"] = "../outside.png"  # escapes the root
    records[2]["image_path"] = "healthy/missing.png"
    (small_bench / "closed.json").write_text(json.dumps(records))
    bench = load_bench(small_bench / "closed.json")
    with TextLoopbackServer(text_responder=answer_letter_b) as server:
        point_at(server, monkeypatch)
        out = tmp_path / "p.jsonl"
        summary = run_bench(bench, SPECS["openai"], out, RunOptions(images_root=small_bench))
        assert len(server.chat_requests()) == 2
    rows = {r["question_id"]: r for r in read_predictions(out)}
    assert summary.errors == 5 and len(rows) == 7
    assert "escapes --images-root" in rows["2_q1"]["error"]
    assert "image not found" in rows["3_q1"]["error"]
    assert rows["2_q1"]["error_kind"] == "image" and rows["1_q1"]["error"] is None


def test_retry_after_is_honoured_and_failures_are_rows(
    small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench(small_bench / "closed.json")
    options = RunOptions(images_root=small_bench, concurrency=1, limit=2)
    with TextLoopbackServer(text_responder=answer_letter_b) as server:
        point_at(server, monkeypatch)
        server.enqueue_fault("429", retry_after=0.4)
        started = time.perf_counter()
        run_bench(bench, SPECS["anthropic"], tmp_path / "p.jsonl", options)
        assert time.perf_counter() - started >= 0.4
        assert len(server.chat_requests()) == 3  # 429, retry, second question
    rows = read_predictions(tmp_path / "p.jsonl")
    assert [r["error"] for r in rows] == [None, None]
    with TextLoopbackServer(text_responder=answer_letter_b) as server:
        point_at(server, monkeypatch)
        server.enqueue_fault("status", status=400, body="bad request")
        options.use_cache = False
        run_bench(bench, SPECS["anthropic"], tmp_path / "r.jsonl", options)
        rows = read_predictions(tmp_path / "r.jsonl")
        assert rows[0]["error_kind"] == "model" and "HTTP 400" in rows[0]["error"]
        # Resume asks the failed question again; the last line per question wins.
        again = run_bench(bench, SPECS["anthropic"], tmp_path / "r.jsonl", options)
        assert again.skipped == 1 and again.calls == 1
        assert read_predictions(tmp_path / "r.jsonl")[-1]["error"] is None


def _many_records(n: int) -> list[dict]:
    return [
        {
            "id": i,
            "image_path": "glioma/a.png",
            "vqa_pairs": [
                {
                    "question_type": "diagnosis",
                    "question": f"Question {i}: what is the most likely diagnosis?",
                    "options": {"A": "glioma", "B": "meningioma", "E": "None of the above"},
                    "answer": "A",
                }
            ],
        }
        for i in range(1, n + 1)
    ]


@pytest.mark.slow
def test_resumes_after_kill_9(small_bench: Path, tmp_path: Path) -> None:
    n = 60
    bench_path = small_bench / "many.json"
    bench_path.write_text(json.dumps(_many_records(n)))
    out = tmp_path / "pred.jsonl"
    with TextLoopbackServer(text_responder=answer_letter_b, latency_s=0.1) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": "k"}
        command = [
            sys.executable,
            "-m",
            "neuroonco.cli",
            "bench",
            "run",
            str(bench_path),
            "--model",
            SPECS["openai"],
            "--out",
            str(out),
            "--concurrency",
            "2",
            "--no-cache",
        ]
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count("\n") >= 10:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        written = out.read_text().count("\n")
        assert 10 <= written < n
        with out.open("a") as handle:
            handle.write('{"question_id": "torn')  # a line cut by the kill
        calls_before = len(server.chat_requests())
        child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        resumed_calls = len(server.chat_requests()) - calls_before
    rows = read_predictions(out)
    ids = [r["question_id"] for r in rows]
    assert sorted(ids) == sorted(f"{i}_q1" for i in range(1, n + 1))  # each exactly once
    assert resumed_calls == n - written
    assert f"{n - written} answered" in " ".join(child.stderr.split())
