"""`annotate --review`: slices that need review pause at the graph's interrupt, are kept in the
SQLite checkpointer beside the store, and resume with a person's decision, in this process or
another, even after the pausing process was killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlite_utils

from neuroonco.errors import NeuroOncoError
from neuroonco.graph.graph import build_graph
from neuroonco.graph.resume import find_paused, resume_slices
from neuroonco.graph.review import check_decision, checkpoint_path
from neuroonco.graph.runner import annotate


def statuses(db: Path) -> dict[str, str]:
    rows = sqlite_utils.Database(db).query("select slice_id, status from annotations")
    return {r["slice_id"]: r["status"] for r in rows}


def test_without_review_the_graph_has_no_pause_and_no_checkpointer(fresh_db: Path):
    graph = build_graph()
    assert graph.checkpointer is None and "review" not in graph.nodes
    summary = annotate(fresh_db)
    assert summary.paused == 0 and summary.by_status.get("needs_review", 0) >= 1
    assert not checkpoint_path(fresh_db).exists()
    with pytest.raises(ValueError, match="checkpointer"):
        build_graph(review_slices=True)


def test_needs_review_slices_pause_and_resume_with_an_edit(fresh_db: Path):
    summary = annotate(fresh_db, review=True)
    waiting = [s for s, st in statuses(fresh_db).items() if st == "needs_review"]
    # The sample tree holds slices nothing can be said about (no mask, no label): agreement 0.
    assert summary.paused == len(waiting) >= 1
    assert checkpoint_path(fresh_db).exists()
    paused, missing = asyncio.run(find_paused(fresh_db))
    assert missing == [] and sorted(p.slice_id for p in paused) == sorted(waiting)
    first = paused[0]
    payload = first.payload
    assert payload["slice_id"] == first.slice_id and payload["run_id"] == summary.run_id
    for key in ("consensus", "agreement", "votes", "critiques", "reasons", "image_path"):
        assert key in payload
    assert "below the review threshold" in payload["reasons"][0]
    assert list(payload["votes"]) == ["0:builtin"]

    with pytest.raises(NeuroOncoError, match="not a valid size"):
        check_decision(payload, {"reviewer": "ana", "fields": {"size": "edit=purple"}})
    decision = check_decision(
        payload,
        {
            "reviewer": "ana",
            "fields": {"lesion_found": "edit=true", "size": "edit=Large", "margins": "reject"},
        },
    )
    done = asyncio.run(resume_slices(fresh_db, [(first, decision)]))
    assert done[0]["status"] == "accepted" and done[0]["size"] == "large"

    db = sqlite_utils.Database(fresh_db)
    rows = list(
        db.query(
            "select field, decision, value, reviewer, source, run_id from reviews"
            " where slice_id = ? order by id",
            [first.slice_id],
        )
    )
    assert [(r["field"], r["decision"], r["value"]) for r in rows] == [
        ("lesion_found", "edit", "true"),
        ("size", "edit", '"large"'),
        ("margins", "reject", None),
        ("slice", "accept", None),
    ]
    assert {(r["reviewer"], r["source"], r["run_id"]) for r in rows} == {
        ("ana", "interrupt", summary.run_id)
    }
    ann = db.execute(
        "select status, findings, run_id from annotations where slice_id = ?", [first.slice_id]
    ).fetchall()
    assert len(ann) == 1 and ann[0][0] == "accepted" and ann[0][2] == summary.run_id
    findings = json.loads(ann[0][1])
    assert findings["size"] == "large" and findings["lesion_found"] is True
    assert "Reviewed by ana" in findings["rationale"]
    # Resumed once, never asked again; the others still wait.
    again, _ = asyncio.run(find_paused(fresh_db))
    assert first.slice_id not in {p.slice_id for p in again}
    assert len(again) == len(paused) - 1
    # A re-run under the same configuration skips the paused and reviewed slices.
    rerun = annotate(fresh_db, review=True)
    assert rerun.done == 0 and rerun.paused == 0


def test_a_whole_slice_reject_and_a_second_process(fresh_db: Path, tmp_path: Path):
    annotate(fresh_db, review=True)
    paused, _ = asyncio.run(find_paused(fresh_db))
    target = paused[0].slice_id
    decisions = tmp_path / "d.jsonl"
    decisions.write_text(json.dumps({"slice_id": target, "decision": "reject", "note": "blur"}))
    cmd = [sys.executable, "-m", "neuroonco.cli", "review", "--db", str(fresh_db), "--resume"]
    ran = subprocess.run(
        [*cmd, "--decisions", str(decisions), "--reviewer", "bo"],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Resumed 1 slices (0 accepted, 1 rejected)" in ran.stdout
    assert statuses(fresh_db)[target] == "rejected"
    again = subprocess.run(
        [*cmd, "--decisions", str(decisions), "--reviewer", "bo"],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )
    assert again.returncode == 0 and "1 already resumed, skipped" in again.stdout
    n = sqlite_utils.Database(fresh_db).execute("select count(*) from reviews").fetchone()[0]
    assert n == 1  # the slice row only; nothing recorded twice


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from neuroonco.graph.runner import annotate

    def stop(summary):
        if summary.paused:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind

    annotate(Path(sys.argv[1]), review=True, concurrency=1, on_progress=stop)
    """
)


def test_kill_9_after_a_pause_loses_nothing(fresh_db: Path, tmp_path: Path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    ran = subprocess.run(
        [sys.executable, str(script), str(fresh_db)], capture_output=True, timeout=300
    )
    assert ran.returncode == -signal.SIGKILL, ran.stderr
    paused, _ = asyncio.run(find_paused(fresh_db))
    assert len(paused) == 1  # the pause the process died after is on disk, store and checkpoint
    first = paused[0]
    decision = check_decision(first.payload, {"reviewer": "cy", "fields": {"size": "Small"}})
    assert decision["fields"]["size"] == {"decision": "edit", "value": "small"}
    # The run goes on where it stopped, then the paused slice is resumed from this process.
    summary = annotate(fresh_db, review=True)
    assert summary.paused >= 1
    edit = check_decision(first.payload, {"reviewer": "cy", "fields": {"size": "edit=small"}})
    asyncio.run(resume_slices(fresh_db, [(first, edit)]))
    row = sqlite_utils.Database(fresh_db).execute(
        "select status, json_extract(findings, '$.size') from annotations where slice_id = ?",
        [first.slice_id],
    )
    assert row.fetchall() == [("accepted", "small")]
    left, _ = asyncio.run(find_paused(fresh_db))
    assert first.slice_id not in {p.slice_id for p in left} and len(left) == summary.paused
    assert os.path.getsize(checkpoint_path(fresh_db)) > 0


def test_a_disagreeing_panel_pauses_with_both_votes(fresh_db: Path, monkeypatch):
    """A canned OpenAI-compatible describer (loopback) beside the builtin one: they disagree on
    the slices' findings, so agreement falls below the threshold and the pause shows both."""
    from neuroonco.agents.providers.base import ProviderOptions
    from neuroonco.graph.context import AnnotateConfig
    from tests.support.agents import agent_responder
    from tests.support.loopback import LoopbackServer

    with LoopbackServer(responder=agent_responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-review-0123456789")
        config = AnnotateConfig(describers=["builtin", "openai:gpt-4o-mini"], max_rounds=1)
        options = ProviderOptions(timeout_s=3, max_retries=1, backoff_base_s=0.01)
        summary = annotate(
            fresh_db, config, review=True, limit=6, concurrency=2, provider_options=options
        )
    assert summary.paused >= 1
    paused, _ = asyncio.run(find_paused(fresh_db))
    split = [p for p in paused if len({json.dumps(v) for v in p.payload["votes"].values()}) > 1]
    assert split, [p.payload["votes"] for p in paused]
    item = split[0]
    assert list(item.payload["votes"]) == ["0:builtin", "1:openai:gpt-4o-mini"]
    assert item.payload["disputed"] and item.payload["critiques"]
    theirs = item.payload["votes"]["1:openai:gpt-4o-mini"]
    name = next(n for n in item.payload["disputed"] if theirs[n] not in (None, True, False))
    wanted = theirs[name]
    edit = check_decision(item.payload, {"reviewer": "di", "fields": {name: f"edit={wanted}"}})
    # No model is reached on resume: the server is gone.
    asyncio.run(resume_slices(fresh_db, [(item, edit)]))
    row = (
        sqlite_utils.Database(fresh_db)
        .execute("select status, findings from annotations where slice_id = ?", [item.slice_id])
        .fetchone()
    )
    assert row[0] == "accepted" and json.loads(row[1])[name] == wanted
