"""The graph over real SDK clients talking to loopback servers: panels, faults, budget, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils

from neuroonco.agents.providers.base import ProviderOptions
from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import annotate
from tests.support.agents import agent_responder
from tests.support.loopback import LoopbackServer

OPENAI_KEY = "sk-test-graph-SECRET-0123456789"
ANTHROPIC_KEY = "sk-ant-graph-SECRET-0123456789"
FAST = ProviderOptions(timeout_s=3, max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with LoopbackServer(responder=agent_responder) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.anthropic_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("OLLAMA_HOST", srv.ollama_host)
        yield srv


def test_mixed_panel_over_three_apis(fresh_db: Path, server: LoopbackServer) -> None:
    config = AnnotateConfig(
        describers=["openai:gpt-4o-mini", "ollama:qwen2.5vl:7b", "builtin"],
        diagnostician="anthropic:claude-haiku-4-5",
        critic="builtin",
        arbiter="builtin",
    )
    summary = annotate(fresh_db, config, concurrency=4, limit=6, provider_options=FAST)
    assert summary.done == 6 and summary.by_status.get("failed", 0) == 0
    db = sqlite_utils.Database(fresh_db)
    calls = list(db["agent_calls"].rows)
    models = {c["model"] for c in calls}
    assert {"openai:gpt-4o-mini", "ollama:qwen2.5vl:7b", "anthropic:claude-haiku-4-5"} <= models
    paid = [c for c in calls if c["model"] != "builtin" and not c["cached"]]
    assert all(c["input_tokens"] == 11 and c["output_tokens"] == 7 for c in paid)
    assert all(c["attempts"] == 1 and c["output"] for c in paid)
    # Images reached each API in its native form.
    paths = {r.path for r in server.requests}
    assert {"/v1/chat/completions", "/api/chat", "/v1/messages"} <= paths
    openai_raw = [r.raw for r in server.requests if r.path == "/v1/chat/completions"]
    assert all("data:image/png;base64," in raw for raw in openai_raw)
    ollama = [r.body for r in server.requests if r.path == "/api/chat"]
    assert all(m.get("images") for body in ollama for m in body["messages"] if m["role"] == "user")
    # The canned describer contradicts the measurements: the critic sent it back for a round.
    assert max(c["round"] for c in calls) == 2
    # No API key anywhere in the store.
    blob = b"".join(p.read_bytes() for p in fresh_db.parent.glob("store.db*"))
    assert OPENAI_KEY.encode() not in blob and ANTHROPIC_KEY.encode() not in blob
    run_config = json.loads(next(iter(db["runs"].rows))["config"])
    assert "SECRET" not in json.dumps(run_config)


def test_retry_after_429_is_recorded_per_attempt(fresh_db: Path, server: LoopbackServer) -> None:
    server.enqueue_fault("429", retry_after=0.3)
    config = AnnotateConfig(describers=["openai:gpt-4o-mini"])
    started = time.perf_counter()
    summary = annotate(fresh_db, config, concurrency=1, limit=1, provider_options=FAST)
    assert summary.by_status.get("failed", 0) == 0
    assert time.perf_counter() - started >= 0.3
    db = sqlite_utils.Database(fresh_db)
    row = next(db["agent_calls"].rows_where("model = ?", ["openai:gpt-4o-mini"]))
    log = json.loads(row["attempt_log"])
    assert row["attempts"] == 2 and [a["outcome"] for a in log] == ["rate_limited", "ok"]
    assert log[0]["retry_after_s"] == pytest.approx(0.3)


def test_transport_failures_fail_slices_and_a_rerun_replaces_them(
    fresh_db: Path, server: LoopbackServer
) -> None:
    for _ in range(3 * 3):  # 3 slices x (1 try + 2 retries): every describer call fails
        server.enqueue_fault("503")
    config = AnnotateConfig(describers=["openai:gpt-4o-mini"])
    summary = annotate(fresh_db, config, concurrency=1, limit=3, provider_options=FAST)
    assert summary.done == 3 and summary.by_status == {"failed": 3}
    db = sqlite_utils.Database(fresh_db)
    errors = [r["error"] for r in db["annotations"].rows]
    assert all("no describer gave a usable answer" in e and "503" in e for e in errors)
    calls = list(db["agent_calls"].rows)
    assert len(calls) == 3 and all(c["attempts"] == 3 and c["output"] is None for c in calls)
    # Once the server is back, the same command retries the failed slices, and the retried
    # annotation replaces the failed one: one current annotation per slice and configuration.
    again = annotate(fresh_db, config, concurrency=2, limit=3, provider_options=FAST)
    assert again.done == 3 and again.by_status.get("failed", 0) == 0
    rows = list(db["annotations"].rows)
    assert len(rows) == 3 and {r["run_id"] for r in rows} == {again.run_id}
    assert len({r["slice_id"] for r in rows}) == 3
    assert db["agent_calls"].count > len(calls)  # the failed calls stay in the history


def test_invalid_output_is_reasked_then_validated(fresh_db: Path, server: LoopbackServer) -> None:
    db = sqlite_utils.Database(fresh_db)
    first = next(db.query("select * from slices order by rowid limit 1"))
    assert first["modality"] in ("t1", "t2", "flair")
    # Physically impossible for the sequence: edema on t1, enhancement on t2/flair.
    bad = {"edema": "extensive"} if first["modality"] == "t1" else {"enhancement": "ring"}
    server.enqueue_fault("invalid_json")
    server.enqueue({"lesion_found": True, "rationale": "x", **bad})
    config = AnnotateConfig(describers=["openai:gpt-4o-mini"])
    summary = annotate(fresh_db, config, concurrency=1, limit=1, provider_options=FAST)
    assert summary.by_status.get("failed", 0) == 0
    row = next(db["agent_calls"].rows_where("model = ? order by rowid", ["openai:gpt-4o-mini"]))
    log = json.loads(row["attempt_log"])
    assert [a["outcome"] for a in log] == ["invalid_output", "invalid_output", "ok"]
    assert "can only be judged on" in log[1]["error"]  # the validator's text, re-asked with
    assert row["input_tokens"] == 33  # tokens of every attempt, not only the last
    assert row["attempts"] == 3


def test_budget_stops_before_exceeding(fresh_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gpt-4o is priced; each call reports the tokens of a typical slice call (~$0.0068).
    with LoopbackServer(responder=agent_responder, usage=(1_500, 300)) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        config = AnnotateConfig(describers=["openai:gpt-4o"], max_rounds=1)
        summary = annotate(
            fresh_db, config, concurrency=2, max_cost_usd=0.05, provider_options=FAST
        )
    assert summary.stopped and "budget" in summary.stopped
    assert 0.04 < summary.tally.cost_usd <= 0.05
    db = sqlite_utils.Database(fresh_db)
    recorded = db.execute("select sum(cost_usd) from agent_calls").fetchone()[0]
    assert recorded == pytest.approx(summary.tally.cost_usd)
    unique = db.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
    assert db["annotations"].count < unique


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(fresh_db: Path) -> None:
    with LoopbackServer(responder=agent_responder, latency_s=0.05) as srv:
        env = {**os.environ, "OPENAI_BASE_URL": srv.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}
        cmd = [
            sys.executable,
            "-m",
            "neuroonco.cli",
            "annotate",
            "--db",
            str(fresh_db),
            "--describers",
            "openai:gpt-4o-mini,builtin",
            "--concurrency",
            "2",
        ]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = sqlite_utils.Database(fresh_db)
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.1)
            try:
                if db.execute("select count(*) from annotations").fetchone()[0] >= 5:
                    break
            except Exception:
                continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = db.execute("select count(*) from annotations").fetchone()[0]
        unique = db.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
        assert 5 <= done_before < unique, "the kill should land mid-run"
        finished = {r[0] for r in db.execute("select slice_id from annotations")}
        result = subprocess.run(
            cmd, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=120
        )
        assert result.returncode == 0, result.stderr
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    per_slice = list(
        db.query(
            "select slice_id, count(*) n from annotations where status != 'failed' "
            "group by slice_id"
        )
    )
    assert len(per_slice) == unique and all(r["n"] == 1 for r in per_slice)
    # The resumed run made no call for a slice the killed one had finished.
    last_run = db.execute("select id from runs order by started_at desc limit 1").fetchone()[0]
    redone = {
        r[0] for r in db.execute("select slice_id from agent_calls where run_id = ?", [last_run])
    }
    assert redone and not (redone & finished)


def test_concurrency_bounds_model_calls_across_slices(
    fresh_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer(responder=agent_responder, latency_s=0.05) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        config = AnnotateConfig(
            describers=["openai:gpt-4o-mini", "openai:gpt-4o-mini"], max_rounds=1
        )
        summary = annotate(fresh_db, config, concurrency=3, limit=8)
    assert summary.done == 8 and summary.by_status.get("failed", 0) == 0
    assert srv.max_in_flight == 3  # used to the full, never beyond


def test_a_model_critic_cannot_keep_what_the_measurements_contradict(
    fresh_db: Path, server: LoopbackServer
) -> None:
    # The canned describer calls every lesion a medium, solitary, round_oval one in the centre
    # on the left; the canned model critic keeps everything. The measured facts still win.
    config = AnnotateConfig(
        describers=["openai:gpt-4o-mini"], critic="openai:gpt-4o-mini", max_rounds=2
    )
    annotate(fresh_db, config, concurrency=4, limit=12, provider_options=FAST)
    db = sqlite_utils.Database(fresh_db)
    rows = list(
        db.query(
            "select s.measurements, s.mask_kind, a.findings from annotations a "
            "join slices s on s.id = a.slice_id where a.status != 'failed'"
        )
    )
    checked = 0
    for row in rows:
        measured = json.loads(row["measurements"] or "null")
        if not measured or not measured.get("lesion") or row["mask_kind"] == "box":
            continue
        found = json.loads(row["findings"])
        for name in ("size", "shape", "spread", "location", "laterality"):
            assert found[name] in (measured[name], None), name
        checked += 1
    assert checked >= 4
