"""needs_review from what the describers said before critique, on the fields that are opinions.

After critique the mask fields agree by construction (the critic pulls them to the measurement),
which lifts the post-critique agreement over the threshold although the describers disagreed.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from neuroonco.agents.providers.base import ProviderOptions
from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import annotate
from tests.support.agents import DESCRIBER, agent_responder
from tests.support.loopback import LoopbackServer

REASON = "describers disagreed before critique"


def _two_minds(body):
    """Describer m-b sees the same lesion as m-a but judges margins and texture otherwise."""
    answer = agent_responder(body)
    if answer is DESCRIBER and body.get("model") == "m-b":
        return {**DESCRIBER, "margins": "ill_defined", "texture": "homogeneous"}
    return answer


def _annotations(db: Path) -> list[dict]:
    rows = sqlite_utils.Database(db).execute(
        "select a.status, a.error, a.agreement, s.mask_path from annotations a "
        "join slices s on s.id = a.slice_id"
    )
    return [dict(zip(("status", "error", "agreement", "mask_path"), r, strict=True)) for r in rows]


def _annotate_with_two_describers(db: Path, monkeypatch, responder) -> list[dict]:
    with LoopbackServer(responder=responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-opinions-0123456789")
        config = AnnotateConfig(describers=["openai:m-a", "openai:m-b"], max_rounds=1)
        options = ProviderOptions(timeout_s=3, max_retries=1, backoff_base_s=0.01)
        annotate(db, config, limit=8, concurrency=2, provider_options=options)
    return _annotations(db)


def test_opinion_disagreement_before_critique_sends_the_slice_to_review(fresh_db, monkeypatch):
    rows = _annotate_with_two_describers(fresh_db, monkeypatch, _two_minds)
    disputed = [r for r in rows if r["error"] and REASON in r["error"]]
    assert disputed, rows
    assert all(r["status"] == "needs_review" for r in disputed)
    assert all("margins 0.5" in r["error"] and "texture 0.5" in r["error"] for r in disputed)
    # The old rule alone (post-critique agreement over all fields) would have accepted some.
    threshold = AnnotateConfig().review_threshold
    assert any(r["agreement"] >= threshold for r in disputed), rows


def test_describers_of_one_mind_are_not_sent_to_review_for_it(fresh_db, monkeypatch):
    rows = _annotate_with_two_describers(fresh_db, monkeypatch, agent_responder)
    assert rows and not any(r["error"] and REASON in r["error"] for r in rows)
