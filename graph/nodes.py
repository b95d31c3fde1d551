"""The graph's nodes: verbs that take the slice state and return partial updates.

Side effects are limited to model calls (served from the cache when repeated) and the persist
node's upsert, so any node can run again after a crash without harm.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.runtime import Runtime
from PIL import Image

from neuroonco.agents.critic_rules import apply_critique, check_claims, enforce_facts
from neuroonco.agents.providers.base import ImagePart
from neuroonco.agents.requests import build_request
from neuroonco.graph.calls import CallOutcome
from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import DescribeTask, SliceState
from neuroonco.schemas.agents import Critique
from neuroonco.schemas.findings import SliceFindings
from neuroonco.tools.measurements import measure_mask


def _read(base: Path, rel: str) -> bytes:
    return (base / rel).read_bytes()


async def load_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Read the slice's PNG and, for multi-image panels, its group's other sequences."""
    ctx = runtime.context
    row = state["slice"]
    try:
        images = [ImagePart(_read(ctx.base_dir, row["image_path"]), _caption(row, True))]
        if ctx.config.group_images:
            for sibling in row.get("siblings") or ():
                images.append(
                    ImagePart(_read(ctx.base_dir, sibling["image_path"]), _caption(sibling, False))
                )
    except OSError as exc:
        return {"error": f"cannot read the slice image: {exc}. Re-run `neuroonco ingest`."}
    return {"images": tuple(images), "round": 1}


def _caption(row: dict[str, Any], primary: bool) -> str:
    seq = row.get("modality") or "unknown sequence"
    return f"{seq} (slice under review)" if primary else f"{seq} (same position, for reference)"


async def measure_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Ground the agents: stored measurements, or measured now from the mask if missing."""
    row = state["slice"]
    facts = row.get("measurements")
    if isinstance(facts, str):
        facts = json.loads(facts)
    if facts is None and row.get("mask_path"):
        with Image.open(runtime.context.base_dir / row["mask_path"]) as im:
            mask = np.asarray(im)
        facts = measure_mask(mask, orientation_known=False) or {"area_fraction": 0.0}
    if facts is not None and row.get("mask_kind"):
        facts = {**facts, "mask_kind": row["mask_kind"]}
    grounding = {
        "modality": row.get("modality"),
        "label": row.get("label"),
        "measurements": facts,
        "has_mask": bool(row.get("mask_path")),
    }
    return {"grounding": grounding}


async def _ask(
    ctx: GraphContext,
    spec: str,
    role: str,
    grounding: dict[str, Any],
    state: SliceState | DescribeTask,
    *,
    images: tuple[ImagePart, ...] = (),
    target: str | None = None,
) -> CallOutcome:
    """One agent call about the slice in ``state``, through the run's caller."""
    request = build_request(
        role,
        grounding,
        images,
        temperature=ctx.config.temperature,
        max_tokens=ctx.config.max_tokens,
    )
    return await ctx.caller.call(
        spec,
        request,
        slice_id=state["slice"]["id"],
        round_=state["round"],
        seq=state["seq"],
        target=target,
    )


async def describe_slice(task: DescribeTask, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """One describer of the panel (a LangGraph ``Send`` branch)."""
    ctx = runtime.context
    grounding = dict(task["grounding"])
    if task["critique"] is not None:
        grounding["critique"] = task["critique"]
        grounding["findings"] = task["previous"]
    provider = ctx.caller.provider(task["spec"])
    images = task["images"] if provider.supports_multiple_images else task["images"][:1]
    outcome = await _ask(
        ctx, task["spec"], "describer", grounding, task, images=images, target=task["key"]
    )
    vote = outcome.output.model_dump(mode="json") if outcome.output is not None else None
    return {"votes": {task["key"]: vote}}


async def diagnose_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """The diagnostician: the source label explained, or a diagnosis from the findings."""
    ctx = runtime.context
    votes = state.get("votes") or {}
    valid = [v for v in votes.values() if v is not None]
    if not valid:
        errors = "; ".join(ctx.caller.errors(state["slice"]["id"], "describer")) or "no vote"
        return {"error": f"no describer gave a valid answer: {errors}"}
    grounding = {**state["grounding"], "votes": valid}
    outcome = await _ask(
        ctx, ctx.config.diagnostician, "diagnostician", grounding, state, images=state["images"][:1]
    )
    if outcome.output is None:
        return {"error": f"diagnostician failed: {outcome.error}"}
    return {"diagnosis": source_label_wins(outcome.output.model_dump(mode="json"), grounding)}


def source_label_wins(opinion: dict[str, Any], grounding: dict[str, Any]) -> dict[str, Any]:
    """A known source label is the answer: a model that says otherwise is recorded as flagging
    a conflict (the slice goes to review), and its own answer is kept in the differential."""
    label = grounding.get("label")
    if label is None or opinion.get("diagnosis") == label:
        return opinion
    said = opinion.get("diagnosis")
    differential = [d for d in [said, *(opinion.get("differential") or [])] if d and d != label]
    note = opinion.get("conflict_note") or (
        f"the model read the slice as {said or 'undetermined'}, the source says {label}"
    )
    return {
        **opinion,
        "diagnosis": label,
        "differential": list(dict.fromkeys(differential)),
        "conflicts_with_source": said is not None,
        "conflict_note": note if said is not None else opinion.get("conflict_note"),
    }


async def critique_findings(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """The critic checks each describer's latest findings; picks who must revise."""
    ctx = runtime.context
    votes = {k: v for k, v in (state.get("votes") or {}).items() if v is not None}
    keys = sorted(votes)
    outcomes = await asyncio.gather(
        *(
            _ask(
                ctx,
                ctx.config.critic,
                "critic",
                {**state["grounding"], "findings": votes[k]},
                state,
                target=k,
            )
            for k in keys
        )
    )
    failed = [o.error for o in outcomes if o.output is None]
    if failed:
        return {"error": f"critic failed: {failed[0]}"}
    critiques = {
        k: _with_facts(ctx, o.output, votes[k], state["grounding"])
        for k, o in zip(keys, outcomes, strict=True)
    }
    revise = [k for k in keys if critiques[k].get("revise")]
    if revise and state["round"] < ctx.config.max_rounds:
        return {
            "critiques": critiques,
            "revise": revise,
            "round": state["round"] + 1,
        }
    return {"critiques": critiques, "revise": []}


def _with_facts(
    ctx: GraphContext, critique: Critique, findings: dict[str, Any], grounding: dict[str, Any]
) -> dict[str, Any]:
    """A model critic's critique with the measured facts enforced (the builtin critic already
    is those rules)."""
    if ctx.config.critic != "builtin":
        facts = check_claims(
            SliceFindings.model_validate(findings),
            grounding.get("measurements"),
            grounding.get("modality"),
            has_mask=grounding.get("has_mask"),
        )
        critique = enforce_facts(critique, facts)
    return critique.model_dump(mode="json")


async def arbitrate_findings(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Apply the last critique to each vote, then fuse the votes into the consensus."""
    ctx = runtime.context
    critiques = state.get("critiques") or {}
    votes = []
    for key, vote in sorted((state.get("votes") or {}).items()):
        if vote is None:
            continue
        findings = SliceFindings.model_validate(vote)
        if key in critiques:
            findings = apply_critique(findings, Critique.model_validate(critiques[key]))
        votes.append(findings.model_dump(mode="json"))
    grounding = {
        **state["grounding"],
        "votes": votes,
        "diagnosis": state.get("diagnosis"),
        "rule": ctx.config.rule,
        "review_threshold": ctx.config.review_threshold,
    }
    outcome = await _ask(ctx, ctx.config.arbiter, "arbiter", grounding, state)
    if outcome.output is None:
        return {"error": f"arbiter failed: {outcome.error}"}
    return {"consensus": outcome.output.model_dump(mode="json")}


async def persist_annotation(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Hand the annotation and the slice's call rows to the store writer (an idempotent upsert)."""
    ctx = runtime.context
    consensus = state.get("consensus")
    error = state.get("error")
    row = {
        "slice_id": state["slice"]["id"],
        "run_id": ctx.run_id,
        "status": "failed" if error or consensus is None else consensus["status"],
        "findings": None,
        "agreement": None,
        "rounds": state.get("round", 0),
        "error": error,
        "config_hash": ctx.config_hash,
    }
    if not error and consensus is not None:
        row["findings"] = _findings_json(consensus)
        row["agreement"] = consensus.get("overall_agreement")
        row["agreement_by_field"] = json.dumps(consensus.get("agreement") or {}, sort_keys=True)
    await ctx.writer.put(row, ctx.caller.take_rows(row["slice_id"]))
    return {}


def _findings_json(consensus: dict[str, Any]) -> str:
    from neuroonco.schemas.agents import Consensus

    return json.dumps(Consensus.model_validate(consensus).findings_json(), sort_keys=True)
