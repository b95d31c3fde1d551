"""Routers: which node runs next. Each returns node names (or ``Send`` fan-outs) and raises on
an impossible state rather than guessing."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import DescribeTask, SliceState


def _task(state: SliceState, key: str, spec: str, revising: bool) -> Send:
    critiques = state.get("critiques") or {}
    task: DescribeTask = {
        "key": key,
        "spec": spec,
        "slice": state["slice"],
        "seq": state["seq"],
        "images": state["images"],
        "grounding": state["grounding"],
        "round": state["round"],
        "critique": critiques.get(key) if revising else None,
        "previous": (state.get("votes") or {}).get(key) if revising else None,
    }
    return Send("describe", task)


def describer_keys(specs: list[str]) -> list[tuple[str, str]]:
    """Stable keys for the panel; the index keeps two describers of one model apart."""
    return [(f"{i}:{spec}", spec) for i, spec in enumerate(specs)]


def route_to_describers(
    state: SliceState, runtime: Runtime[GraphContext]
) -> list[Send] | Literal["persist"]:
    """After measuring: one branch per describer model, in parallel."""
    if state.get("error"):
        return "persist"
    if "grounding" not in state:
        raise RuntimeError("route_to_describers: the slice was not measured")
    return [_task(state, k, s, False) for k, s in describer_keys(runtime.context.config.describers)]


def route_after_critique(
    state: SliceState, runtime: Runtime[GraphContext]
) -> list[Send] | Literal["diagnose", "persist"]:
    """Revise: the criticised describers get another round with the critique; else diagnose."""
    if state.get("error"):
        return "persist"
    revise = state.get("revise") or []
    if not revise:
        return "diagnose"
    specs = dict(describer_keys(runtime.context.config.describers))
    unknown = [k for k in revise if k not in specs]
    if unknown:
        raise RuntimeError(f"route_after_critique: unknown describers {unknown}")
    return [_task(state, k, specs[k], True) for k in revise]
