"""The graph over real SDK clients with models that answer as unreliable ones do: critics and
arbiters that contradict the mask, describers that repeat a validator-violating answer, calls that
fail mid-slice. The measured facts still win, a bad answer degrades a field and not the slice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from neuroonco import traces
from neuroonco.agents.providers.base import ModelRequest, ModelResult, ProviderOptions
from neuroonco.agents.providers.builtin import BuiltinProvider
from neuroonco.agents.providers.registry import make_provider
from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import Runner, annotate
from tests.support.agents import DESCRIBER, agent_responder, schema_name
from tests.support.loopback import LoopbackServer

OPENAI_KEY = "sk-test-unreliable-0123456789"
FAST = ProviderOptions(timeout_s=3, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.05)
MASK_FIELDS = ("size", "shape", "spread", "location", "laterality")
LESION_FIELDS = (*MASK_FIELDS, "margins", "texture", "enhancement", "edema", "signal_intensity")
SEQUENCES = ("t1", "t1ce", "t2", "flair")
OTHER = {
    "size": {"small": "large", "medium": "small", "large": "small"},
    "shape": {"round_oval": "irregular", "lobulated": "round_oval", "irregular": "round_oval"},
}


def user_text(body: Any) -> str:
    """Every text the request's messages carry, whichever API it speaks."""
    parts: list[str] = [body.get("system") or ""] if isinstance(body.get("system"), str) else []
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


def responder_with(**answers: Any):
    """agent_responder, with some schemas answered by a function of the request body."""

    def respond(body: Any) -> Any:
        name = schema_name(body)
        if name in answers:
            return answers[name](body)
        return agent_responder(body)

    return respond


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """``with env(LoopbackServer(...)) as server``: started, and every SDK pointed at it."""

    @contextlib.contextmanager
    def serve(server: LoopbackServer) -> Iterator[LoopbackServer]:
        with server:
            monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
            monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
            monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", OPENAI_KEY)
            monkeypatch.setenv("OLLAMA_HOST", server.ollama_host)
            yield server

    return serve


def stored(db_path: Path) -> list[dict[str, Any]]:
    db = sqlite_utils.Database(db_path)
    rows = list(
        db.query(
            "select s.id, s.label, s.modality, s.measurements, s.mask_kind, a.status, a.findings,"
            " a.agreement, a.error, a.overrides from annotations a join slices s"
            " on s.id = a.slice_id"
        )
    )
    for row in rows:
        row["measurements"] = json.loads(row["measurements"] or "null")
        row["findings"] = json.loads(row["findings"] or "null")
        row["overrides"] = json.loads(row["overrides"] or "[]")
    return rows


def assert_facts_hold(rows: list[dict[str, Any]]) -> int:
    """Every stored consensus agrees with its mask and label; returns how many were checked."""
    checked = 0
    for row in rows:
        m, found = row["measurements"], row["findings"]
        assert row["status"] != "failed", row["error"]
        if row["label"]:
            assert found["diagnosis"] == row["label"], row["id"]
        if m is None:
            continue
        if m["area_fraction"] == 0:
            assert found["lesion_found"] is False, row["id"]
            assert all(found[name] is None for name in LESION_FIELDS), row["id"]
        else:
            assert found["lesion_found"] is True, row["id"]
            for name in MASK_FIELDS:
                if name == "shape" and row["mask_kind"] == "box":
                    continue
                assert found[name] == m[name], (row["id"], name)
        checked += 1
    return checked


def test_a_critic_that_downgrades_and_erases_measured_fields_is_overruled(
    fresh_db: Path, env
) -> None:
    def wrong_critic(body: Any) -> dict[str, Any]:
        text = user_text(body).split("Findings under review:", 1)[-1]
        claimed = dict(re.findall(r"(\w+)=(\w+)", text.splitlines()[1]))
        verdicts: dict[str, Any] = {}
        for name in ("size", "shape"):
            if name in claimed:
                wrong = OTHER[name][claimed[name]]
                verdicts[name] = {"action": "downgrade", "value": wrong, "reason": "looks off"}
        for name in ("location", "laterality"):
            if name in claimed:
                verdicts[name] = {"action": "erase", "reason": "cannot tell"}
        return {"verdicts": verdicts, "revise": bool(verdicts), "summary": "fixed"}

    with env(LoopbackServer(responder=responder_with(Critique=wrong_critic))):
        config = AnnotateConfig(describers=["builtin"], critic="openai:critic-x", max_rounds=1)
        summary = annotate(fresh_db, config, concurrency=4, limit=24, provider_options=FAST)
    assert summary.by_status.get("failed", 0) == 0
    rows = stored(fresh_db)
    assert assert_facts_hold(rows) >= 20
    lesion = [r for r in rows if r["measurements"] and r["measurements"]["area_fraction"] > 0]
    for row in lesion:
        overruled = {o["field"]: o for o in row["overrides"] if o["step"] == "critic"}
        assert {"size", "shape", "location"} <= set(overruled), row["id"]
        assert overruled["size"]["model"] == "openai:critic-x"
        assert overruled["size"]["said"].startswith("downgrade to ")
        assert overruled["location"]["said"] == "erase" and overruled["location"]["kept"] == "keep"
        assert "mask" in overruled["size"]["reason"]
    # The inspection views show who was overruled on which field.
    trace = traces.slice_trace(traces.open_store(fresh_db), lesion[0]["id"])
    assert any(r["field"] == "size" for r in traces.override_rows(trace))
    by_field = {r["field"]: r for r in traces.agreement_rows(trace)}
    assert "critic openai:critic-x" in by_field["size"]["overruled"]


def test_an_arbiter_answering_random_values_cannot_change_the_facts(fresh_db: Path, env) -> None:
    rng = random.Random(7)
    vocabulary = {
        "size": ["small", "medium", "large"],
        "shape": ["round_oval", "lobulated", "irregular"],
        "location": ["upper_left", "center", "lower_right"],
        "laterality": ["left", "right", "bilateral"],
        "margins": ["well_circumscribed", "ill_defined"],
    }

    def random_arbiter(body: Any) -> dict[str, Any]:
        answer = {name: rng.choice(values) for name, values in vocabulary.items()}
        return {
            **answer,
            "lesion_found": True,
            "diagnosis": "metastasis",
            "agreement": {"size": 1.0},
            "overall_agreement": 1.0,
            "status": "accepted",
            "rationale": "A small metastasis, agreed by all.",
        }

    with env(LoopbackServer(responder=responder_with(Consensus=random_arbiter))):
        config = AnnotateConfig(describers=["builtin"], arbiter="openai:arbiter-x", max_rounds=1)
        summary = annotate(fresh_db, config, concurrency=4, limit=24, provider_options=FAST)
    assert summary.by_status.get("failed", 0) == 0
    rows = stored(fresh_db)
    assert assert_facts_hold(rows) >= 20
    empty = [r for r in rows if r["measurements"] and r["measurements"]["area_fraction"] == 0]
    assert empty
    for row in empty:
        assert row["findings"]["diagnosis"] == "no_tumor"
        fields = {o["field"] for o in row["overrides"] if o["model"] == "openai:arbiter-x"}
        assert {"lesion_found", "size", "diagnosis"} <= fields
    # The arbiter wrote the rationale; the agreement is the votes' own (builtin panel: 1.0).
    assert all(r["findings"]["rationale"].startswith("A small metastasis") for r in rows)
    assert all(r["agreement"] == 1.0 for r in rows if r["measurements"])


def test_describers_repeating_a_validator_violation_still_vote(fresh_db: Path, env) -> None:
    def contradicting(body: Any) -> dict[str, Any]:
        said = re.search(r"Sequence: (\w+)", user_text(body)).group(1)
        other = next(s for s in SEQUENCES if s != said)
        return {
            "lesion_found": True,
            "modality": other,  # contradicts the known sequence
            "size": "large",
            "margins": "ill_defined",
            "enhancement": "ring" if said != "t1ce" else None,  # off t1ce
            "edema": "mild" if said in ("t1", "t1ce") else None,  # on t1/t1ce
            "rationale": "Large ill-defined mass.",
        }

    def denying(body: Any) -> dict[str, Any]:
        return {"lesion_found": False, "size": "small", "texture": "heterogeneous"}

    with env(
        LoopbackServer(
            responder=lambda body: (
                (contradicting(body) if body.get("tools") else denying(body))
                if schema_name(body) == "SliceFindings"
                else agent_responder(body)
            )
        )
    ) as server:
        config = AnnotateConfig(
            describers=["openai:small-vlm", "ollama:qwen2.5vl:7b"],
            diagnostician="openai:small-vlm",
            max_rounds=1,
        )
        summary = annotate(fresh_db, config, concurrency=4, limit=12, provider_options=FAST)
        ollama_prompts = [
            user_text(r.body) for r in server.chat_requests() if r.path == "/api/chat"
        ]
    assert summary.done == 12 and summary.by_status.get("failed", 0) == 0
    rows = stored(fresh_db)
    db = sqlite_utils.Database(fresh_db)
    for row in rows:
        erased = {
            (o["target"], o["field"]): o for o in row["overrides"] if o["step"] == "describer"
        }
        if row["modality"]:
            why = erased[("0:openai:small-vlm", "modality")]["reason"]
            assert "known from the source" in why
        # lesion_found false with lesion fields: the lesion fields go, the denial stays a vote.
        assert "lesion_found is false" in erased[("1:ollama:qwen2.5vl:7b", "size")]["reason"]
        roles = {
            r[0] for r in db.execute("select role from agent_calls where slice_id = ?", [row["id"]])
        }
        assert {"describer", "diagnostician", "critic", "arbiter"} <= roles
    # Every re-ask repeated the mistake: the calls stayed invalid, the votes were repaired.
    calls = list(db["agent_calls"].rows_where("role = 'describer'"))
    assert calls and all(c["output"] is None and c["attempts"] == 3 for c in calls)
    lesion = [r for r in rows if r["measurements"] and r["measurements"]["area_fraction"] > 0]
    assert lesion and all(r["findings"]["lesion_found"] is True for r in lesion)
    # Ollama's grammar-only format: the prompt carries the field guide.
    assert ollama_prompts and all(
        "- size: small | medium | large | null" in p for p in ollama_prompts
    )


def test_a_failed_revision_keeps_the_previous_vote(fresh_db: Path, env) -> None:
    with env(LoopbackServer(responder=agent_responder)) as server:
        server.enqueue(DESCRIBER)  # round 1: a lesion on the (tumour-free) first slice
        server.enqueue_fault("status", status=400)  # round 2: the revision fails
        config = AnnotateConfig(describers=["openai:gpt-4o-mini"], max_rounds=2)
        summary = annotate(fresh_db, config, concurrency=1, limit=1, provider_options=FAST)
    (row,) = stored(fresh_db)
    assert summary.by_status.get("failed", 0) == 0 and row["status"] == "needs_review"
    assert "previous answer kept" in row["error"]
    # The round-1 vote, corrected by the critic, is the consensus.
    assert row["findings"]["lesion_found"] is False
    assert row["agreement"] == 1.0


def test_the_diagnostician_reads_the_post_critique_findings(fresh_db: Path, env) -> None:
    with env(LoopbackServer(responder=agent_responder)) as server:
        # The canned describer claims a medium lesion on the tumour-free first slice.
        config = AnnotateConfig(
            describers=["openai:gpt-4o-mini"], diagnostician="openai:dx", max_rounds=2
        )
        annotate(fresh_db, config, concurrency=1, limit=1, provider_options=FAST)
        bodies = [r.body for r in server.chat_requests()]
    asked = [user_text(b) for b in bodies if schema_name(b) == "DiagnosisOpinion"]
    described = [user_text(b) for b in bodies if schema_name(b) == "SliceFindings"]
    assert len(asked) == 1 and len(described) == 2
    # The diagnostician gets the findings, as the critic left them.
    assert "Describer votes:\n1. lesion_found=false" in asked[0]
    assert "size=medium" not in asked[0]
    # The revising describer gets its previous answer and the critique of it.
    assert "Your previous answer:\nlesion_found=true" in described[1]
    assert "The critic ruled:\n" in described[1]
    assert "- lesion_found: downgrade to false (lesion claimed but" in described[1]
    assert "The critic ruled" not in described[0]


def test_run_wide_concurrency_bounds_two_providers_together(fresh_db: Path, env) -> None:
    with env(LoopbackServer(responder=agent_responder, latency_s=0.05)) as server:
        config = AnnotateConfig(
            describers=["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],
            diagnostician="anthropic:claude-haiku-4-5",
            max_rounds=1,
        )
        # Each provider would allow 8 at once; the run allows 2 in all.
        options = ProviderOptions(timeout_s=5, max_concurrency=8)
        summary = annotate(fresh_db, config, concurrency=2, limit=8, provider_options=options)
        paths = {r.path for r in server.chat_requests()}
    assert summary.done == 8 and summary.by_status.get("failed", 0) == 0
    assert {"/v1/chat/completions", "/v1/messages"} <= paths
    assert server.max_in_flight == 2


@pytest.mark.parametrize("role", ["critic", "diagnostician"])
def test_a_failing_critic_or_diagnostician_gives_the_deterministic_answer_for_review(
    fresh_db: Path, env, role: str
) -> None:
    with env(LoopbackServer(responder=agent_responder)) as server:
        for _ in range(6):
            server.enqueue_fault("status", status=400)
        config = AnnotateConfig(describers=["builtin"], max_rounds=1, **{role: "openai:flaky"})
        summary = annotate(fresh_db, config, concurrency=1, limit=6, provider_options=FAST)
    assert summary.by_status == {"needs_review": 6}
    rows = stored(fresh_db)
    assert assert_facts_hold(rows) == 6
    assert all(f"{role} openai:flaky gave no usable answer" in r["error"] for r in rows)


class _BrokenCritic(BuiltinProvider):
    """A third-party provider with a bug: it raises instead of returning a failed result."""

    async def complete(self, request: ModelRequest) -> ModelResult:
        if request.role == "critic":
            raise RuntimeError("provider bug")
        return await super().complete(request)


def test_calls_of_a_slice_that_raises_are_still_stored(fresh_db: Path, env) -> None:
    with env(LoopbackServer(responder=agent_responder)):
        config = AnnotateConfig(describers=["openai:gpt-4o-mini"], max_rounds=1)

        async def run() -> Any:
            providers = {
                "openai:gpt-4o-mini": make_provider("openai:gpt-4o-mini", FAST),
                "builtin": _BrokenCritic(),
            }
            try:
                runner = Runner(fresh_db, config, concurrency=2, limit=3, providers=providers)
                return await runner.run()
            finally:
                for provider in providers.values():
                    await provider.aclose()

        summary = asyncio.run(run())
    assert summary.by_status == {"failed": 3}
    db = sqlite_utils.Database(fresh_db)
    failed = {r["slice_id"] for r in db["annotations"].rows}
    called = {r["slice_id"] for r in db["agent_calls"].rows_where("role = 'describer'")}
    assert called == failed and len(called) == 3  # paid for, so recorded
