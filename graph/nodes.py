"""The graph's nodes: verbs that take the slice state and return partial updates.

Side effects are limited to model calls (served from the cache when repeated) and the persist
node's upsert, so any node can run again after a crash without harm. Every model answer goes
through :mod:`neuroonco.agents.facts` before it is kept; when a model gives no usable answer the
node falls back to the deterministic agent and marks the slice for review, so a slice fails only
when no describer answered at all.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from langgraph.runtime import Runtime
from PIL import Image

from neuroonco.agents import facts as policy
from neuroonco.agents.evidence import apply_critique, check_claims, mask_state
from neuroonco.agents.facts import Facts, Override
from neuroonco.agents.fusion import opinion_agreement
from neuroonco.agents.prompts import validation_context
from neuroonco.agents.providers import builtin
from neuroonco.agents.providers.base import ImagePart
from neuroonco.agents.requests import build_request
from neuroonco.agents.salvage import salvage_findings
from neuroonco.graph.calls import CallOutcome
from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import DescribeTask, SliceState
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion
from neuroonco.schemas.findings import SliceFindings
from neuroonco.tools.measurements import measure_mask


def _read(base: Path, rel: str) -> bytes:
    return (base / rel).read_bytes()


def slice_images(row: dict[str, Any], base: Path, group: bool) -> tuple[ImagePart, ...]:
    """The slice's PNG first, then (``group``) its group's other sequences; OSError if missing."""
    images = [ImagePart(_read(base, row["image_path"]), _caption(row, True))]
    if group:
        for sibling in row.get("siblings") or ():
            images.append(ImagePart(_read(base, sibling["image_path"]), _caption(sibling, False)))
    return tuple(images)


def slice_grounding(row: dict[str, Any], base: Path) -> dict[str, Any]:
    """The measured facts every agent is grounded in: stored measurements, or measured now from
    the mask if missing (see neuroonco.agents.prompts for the keys)."""
    facts = row.get("measurements")
    if isinstance(facts, str):
        facts = json.loads(facts)
    if facts is None and row.get("mask_path"):
        with Image.open(base / row["mask_path"]) as im:
            mask = np.asarray(im)
        facts = measure_mask(mask, orientation_known=False) or {"area_fraction": 0.0}
    if facts is not None and row.get("mask_kind"):
        facts = {**facts, "mask_kind": row["mask_kind"]}
    return {
        "modality": row.get("modality"),
        "plane": row.get("plane"),
        "label": row.get("label"),
        "measurements": facts,
        "has_mask": bool(row.get("mask_path")),
    }


async def load_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Read the slice's PNG and, for multi-image panels, its group's other sequences."""
    ctx = runtime.context
    try:
        images = slice_images(state["slice"], ctx.base_dir, ctx.config.group_images)
    except OSError as exc:
        return {"error": f"cannot read the slice image: {exc}. Re-run `neuroonco ingest`."}
    return {"images": images, "round": 1}


def _caption(row: dict[str, Any], primary: bool) -> str:
    seq = row.get("modality") or "unknown sequence"
    return f"{seq} (slice under review)" if primary else f"{seq} (same position, for reference)"


async def measure_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Ground the agents: stored measurements, or measured now from the mask if missing."""
    return {"grounding": slice_grounding(state["slice"], runtime.context.base_dir)}


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
    temperature, max_tokens = ctx.config.request_params(spec)
    request = build_request(role, grounding, images, temperature=temperature, max_tokens=max_tokens)
    return await ctx.caller.call(
        spec,
        request,
        slice_id=state["slice"]["id"],
        round_=state["round"],
        seq=state["seq"],
        target=target,
    )


def _dicts(overrides: list[Override]) -> list[dict[str, Any]]:
    return [o.as_dict() for o in overrides]


def _short(error: str | None, limit: int = 300) -> str:
    text = " ".join((error or "no answer").split())
    return text if len(text) <= limit else text[:limit] + "..."


async def describe_slice(task: DescribeTask, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """One describer of the panel (a LangGraph ``Send`` branch).

    An answer that still fails validation after the re-asks is repaired (the rejected fields
    erased, recorded as overrides); a revision that gives nothing usable keeps the previous vote.
    """
    ctx = runtime.context
    spec, key = task["spec"], task["key"]
    grounding = dict(task["grounding"])
    if task["critique"] is not None:
        grounding["critique"] = task["critique"]
        grounding["previous"] = task["previous"]
    provider = ctx.caller.provider(spec)
    images = task["images"] if provider.supports_multiple_images else task["images"][:1]
    outcome = await _ask(ctx, spec, "describer", grounding, task, images=images, target=key)
    update: dict[str, Any] = {}
    vote = outcome.output.model_dump(mode="json") if outcome.output is not None else None
    if vote is None and outcome.invalid:
        findings, erased = salvage_findings(outcome.row["response"], validation_context(grounding))
        update["overrides"] = [
            Override("describer", spec, name, said, None, why, key).as_dict()
            for name, (said, why) in erased.items()
        ]
        if findings is not None:
            vote = findings.model_dump(mode="json")
    if vote is None and task["previous"] is not None:
        vote = task["previous"]
        update["review"] = [
            f"{key} revision gave no usable answer ({_short(outcome.error)}): previous answer kept"
        ]
    if vote is None:
        update["failures"] = [f"{key}: {_short(outcome.error)}"]
    update["votes"] = {key: vote}
    if task["critique"] is None:  # a first answer: what the describer said before critique
        update["first_votes"] = {key: vote}
    return update


def current_votes(state: SliceState) -> list[SliceFindings]:
    """Each describer's latest usable findings with the last critique applied, in panel order."""
    critiques = state.get("critiques") or {}
    votes = []
    for key, vote in sorted((state.get("votes") or {}).items()):
        if vote is None:
            continue
        findings = SliceFindings.model_validate(vote)
        if key in critiques:
            findings = apply_critique(findings, Critique.model_validate(critiques[key]))
        votes.append(findings)
    return votes


async def critique_findings(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """The critic checks each describer's latest findings; picks who must revise.

    A model critic's verdicts go through the fact policy; where the critic gives no usable
    answer, the measurement checks stand in and the slice is marked for review.
    """
    ctx = runtime.context
    spec = ctx.config.critic
    votes = {k: v for k, v in (state.get("votes") or {}).items() if v is not None}
    if not votes:
        failures = "; ".join(state.get("failures") or ()) or "no describer answered"
        return {"error": f"no describer gave a usable answer: {failures}"}
    keys = sorted(votes)
    facts = Facts.of(state["grounding"])
    outcomes = await asyncio.gather(
        *(
            _ask(ctx, spec, "critic", {**state["grounding"], "findings": votes[k]}, state, target=k)
            for k in keys
        )
    )
    critiques: dict[str, dict[str, Any]] = {}
    overrides: list[Override] = []
    review: list[str] = []
    for key, outcome in zip(keys, outcomes, strict=True):
        findings = SliceFindings.model_validate(votes[key])
        if outcome.output is None:
            critique = check_claims(
                findings, facts.measurements, facts.modality, has_mask=facts.has_mask
            )
            review.append(
                f"critic {spec} gave no usable answer on {key} ({_short(outcome.error)}): "
                "the measurement checks were used"
            )
        else:
            critique, found = policy.enforce_critique(
                outcome.output, findings, facts, model=spec, target=key
            )
            overrides += found
        critiques[key] = critique.model_dump(mode="json")
    update: dict[str, Any] = {"critiques": critiques, "overrides": _dicts(overrides)}
    if review:
        update["review"] = review
    revise = [k for k in keys if critiques[k].get("revise")]
    if revise and state["round"] < ctx.config.max_rounds:
        update.update(revise=revise, round=state["round"] + 1)
    else:
        update["revise"] = []
    return update


async def diagnose_slice(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """The diagnostician, on the post-critique findings; the source label wins (a differing
    answer is kept as a flagged conflict). Without a usable answer, the deterministic
    diagnosis (the source label, checked against the evidence) stands in."""
    ctx = runtime.context
    spec = ctx.config.diagnostician
    votes = [v.model_dump(mode="json") for v in current_votes(state)]
    grounding = {**state["grounding"], "votes": votes}
    outcome = await _ask(ctx, spec, "diagnostician", grounding, state, images=state["images"][:1])
    if outcome.output is None:
        opinion = builtin.diagnose(grounding)
        note = (
            f"diagnostician {spec} gave no usable answer ({_short(outcome.error)}): "
            "the deterministic diagnosis was used"
        )
        return {"diagnosis": opinion.model_dump(mode="json"), "review": [note]}
    opinion, overrides = policy.enforce_diagnosis(
        outcome.output, Facts.of(state["grounding"]), model=spec
    )
    return {"diagnosis": opinion.model_dump(mode="json"), "overrides": _dicts(overrides)}


async def arbitrate_findings(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Fuse the post-critique votes by the rule, re-impose the facts, apply the label rule; a
    model arbiter contributes its rationale and values only where the policy allows."""
    ctx = runtime.context
    spec = ctx.config.arbiter
    votes = current_votes(state)
    diagnosis = state.get("diagnosis")
    grounding = {
        **state["grounding"],
        "votes": [v.model_dump(mode="json") for v in votes],
        "diagnosis": diagnosis,
        "rule": ctx.config.rule,
        "review_threshold": ctx.config.review_threshold,
    }
    outcome = await _ask(ctx, spec, "arbiter", grounding, state)
    review = list(state.get("review") or ())
    proposal = None
    if outcome.output is None:
        note = f"arbiter {spec} gave no usable answer ({_short(outcome.error)}): fused by rule"
        review.append(note)
    elif spec != "builtin":  # the builtin arbiter is the rule itself
        proposal = outcome.output
    disputed = _disputed_before_critique(state, ctx.config.review_threshold)
    if disputed is not None:
        review.append(disputed)
    consensus, overrides = policy.arbitrate(
        votes,
        Facts.of(state["grounding"]),
        rule=ctx.config.rule,
        diagnosis=DiagnosisOpinion.model_validate(diagnosis) if diagnosis else None,
        review_threshold=ctx.config.review_threshold,
        n_votes=len(state.get("votes") or {}),
        proposal=proposal if isinstance(proposal, Consensus) else None,
        model=spec,
        review=review,
    )
    update: dict[str, Any] = {
        "consensus": consensus.model_dump(mode="json"),
        "overrides": _dicts(overrides),
    }
    added = review[len(state.get("review") or ()) :]
    if added:
        update["review"] = added
    return update


def _disputed_before_critique(state: SliceState, threshold: float) -> str | None:
    """Why the slice needs a person when its describers disagreed on opinions before critique
    (see :func:`neuroonco.agents.fusion.opinion_agreement`), else None."""
    first = [
        SliceFindings.model_validate(v)
        for _, v in sorted((state.get("first_votes") or {}).items())
        if v is not None
    ]
    grounding = state["grounding"]
    measured = mask_state(grounding.get("measurements"), grounding.get("has_mask")) != "none"
    overall, by_field = opinion_agreement(first, measured=measured)
    if overall is None or overall >= threshold:
        return None
    low = ", ".join(f"{name} {share:g}" for name, share in by_field.items() if share < 1)
    return (
        f"describers disagreed before critique: opinion agreement {overall:g} < {threshold:g} "
        f"({low})"
    )


def annotation_row(state: SliceState, ctx: GraphContext) -> dict[str, Any]:
    """The ``annotations`` row of the slice as the state stands."""
    consensus = state.get("consensus")
    error = state.get("error")
    failed = bool(error) or consensus is None
    overrides = list({json.dumps(o, sort_keys=True): o for o in state.get("overrides") or ()})
    row = {
        "slice_id": state["slice"]["id"],
        "run_id": ctx.run_id,
        "status": "failed" if failed else consensus["status"],
        "findings": None,
        "agreement": None,
        "rounds": state.get("round", 0),
        "error": error or ("; ".join(dict.fromkeys(state.get("review") or ())) or None),
        "config_hash": ctx.config_hash,
        "overrides": "[" + ",".join(overrides) + "]" if overrides else None,
    }
    if not failed:
        row["findings"] = _findings_json(consensus)
        row["agreement"] = consensus.get("overall_agreement")
        row["agreement_by_field"] = json.dumps(consensus.get("agreement") or {}, sort_keys=True)
    return row


async def persist_annotation(state: SliceState, runtime: Runtime[GraphContext]) -> dict[str, Any]:
    """Hand the annotation to the store writer (an idempotent upsert; the call rows are already
    with the writer). A person's decision (``reviews``) is committed with it before the node
    ends, so the checkpoint never says done while the store does not."""
    ctx = runtime.context
    await ctx.writer.put(annotation_row(state, ctx))
    if state.get("reviews"):
        ctx.writer.put_reviews(state["reviews"])
        ctx.writer.flush()
    return {}


def _findings_json(consensus: dict[str, Any]) -> str:
    return json.dumps(Consensus.model_validate(consensus).findings_json(), sort_keys=True)
