"""Versioned prompts: a system text and a user template per role, and the grounding rendered in.

The rendered prompt is part of the model-call cache key, so rendering is deterministic: no clock,
no randomness, dict keys sorted, numbers at fixed precision. Change any text here and bump
:data:`PROMPT_VERSION` (it is recorded with each run).

Grounding keys (the graph fills them; :mod:`neuroonco.agents.providers.builtin` reads the same):

- ``modality``: the slice's sequence (``t1``/``t1ce``/``t2``/``flair``) or None;
- ``plane``: the slice's plane (``axial``/``sagittal``/``coronal``) or None; only a
  non-axial plane is rendered (axial is what every prompt assumes);
- ``label``: the source's diagnosis (a :class:`~neuroonco.schemas.vocabulary.Diagnosis` value)
  or None;
- ``measurements``: the dict of :func:`neuroonco.tools.measurements.measure_mask` or None (None
  also for an empty mask); may hold ``intensity`` {channel: stats with vocabulary hints};
- ``has_mask``: whether the source gave a mask for the slice (tells an empty mask from none);
- ``mask_kind``: the slice's ``mask_kind`` (``segmentation`` | ``box``); a box has no shape;
- ``votes``: describers' post-critique findings, for the diagnostician and the arbiter;
- ``findings``: the findings under critique (critic only);
- ``previous``: a revising describer's previous findings, with ``critique``: the critic's
  ruling on them (Critique dict);
- ``diagnosis``: the diagnostician's opinion (DiagnosisOpinion dict), for the arbiter;
- ``rule``, ``review_threshold``: the arbiter's fusion settings.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel

from neuroonco.agents.evidence import (
    channel_stats,
    intensity_evidence,
    intensity_hints,
    mask_evidence,
    mask_state,
)
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion
from neuroonco.schemas.findings import (
    FINDING_FIELDS,
    MASK_FIELDS,
    SliceFindings,
    judged_on,
    sequence_of,
)
from neuroonco.schemas.vocabulary import normalise_label

PROMPT_VERSION = "2026-12-02.1"

RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    "describer": SliceFindings,
    "diagnostician": DiagnosisOpinion,
    "critic": Critique,
    "arbiter": Consensus,
}

_COMMON = (
    "Answer with JSON that fits the given schema. Use only the allowed values. A field the "
    "evidence does not support is null: omission is acceptable, fabrication is not."
)
SYSTEMS: dict[str, str] = {
    "describer": "You are a neuroradiologist describing one 2D brain MRI slice for a research "
    "dataset. Describe what the image shows, grounded in the measured facts you are given. "
    + _COMMON,
    "diagnostician": "You are a neuroradiologist giving the most likely diagnosis for one 2D "
    "brain MRI slice from the describers' findings, the measurements and the source's label. "
    + _COMMON,
    "critic": "You are a strict reviewer of MRI slice descriptions. Check every claimed value "
    "against the measurements and MRI physics, and rule keep, erase or downgrade on each. "
    + _COMMON,
    "arbiter": "You are the arbiter of a panel of describers. Fuse their votes field by field "
    "with the stated rule, record the agreement, and decide the status. " + _COMMON,
}

TEMPLATES: dict[str, str] = {
    "describer": (
        "Describe the lesion on this slice.\n\n{facts}\n\n"
        "The mask measurements are ground truth for size, shape, spread, location and "
        "laterality: copy the measured values for them. Judge margins, texture, "
        "signal_intensity, enhancement (t1ce only) and edema (t2/flair only) from the image; "
        "intensity hints are heuristics to check, not facts.{revision}"
    ),
    "diagnostician": (
        "Give the most likely diagnosis for this slice.\n\n{facts}\n\n{votes}\n\n"
        "The source label comes from the dataset. Keep it unless the findings contradict it; "
        "when they do (a lesion on a no_tumor slice, or no lesion on a tumour slice), set "
        "conflicts_with_source to true and explain in conflict_note."
    ),
    "critic": (
        "Check these findings.\n\n{facts}\n\nFindings under review:\n{findings}\n\n"
        "For every non-null field give a verdict: keep (supported, or nothing can refute it), "
        "erase (ruled out), downgrade with `value` (replace by what the evidence supports). "
        "Mask-derived fields must equal the measured values; enhancement is only judged on "
        "t1ce, edema only on t2/flair. Quote the measured numbers in each reason."
    ),
    "arbiter": (
        "Fuse the describers' votes.\n\n{facts}\n\n{votes}\n\n{diagnosis}\n\n"
        "Rule: {rule}. {rule_text} Agreement per field is the share of votes equal to the "
        "fused value (an abstention counts as disagreement; 1.0 when all abstain). "
        "overall_agreement is the mean over fields anyone voted on. status is needs_review "
        "when overall_agreement < {threshold} or the diagnosis conflicts with the source, "
        "rejected when there is no valid vote, else accepted."
    ),
}

RULE_TEXTS = {
    "unanimous": "A value is kept only if every non-null vote gives it, else null.",
    "majority": "A value is kept only if more than half of all votes give it, else null.",
    "seed_rules": "Agreeing votes keep their value; on disagreement a mask-derived field takes "
    "the measured value and any other field is null.",
}


class RenderedPrompt(NamedTuple):
    system: str
    prompt: str


def _plain(obj: Any) -> Any:
    """Pydantic models and enums as plain JSON values."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return json.loads(json.dumps(obj, default=str))


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_measurements(grounding: Mapping[str, Any]) -> str:
    """The measured facts of a slice as text lines (mask fields with their numbers, hints)."""
    m = grounding.get("measurements") or {}
    state = mask_state(m, grounding.get("has_mask"))
    if state == "none":
        lines = ["No segmentation mask: nothing is measured; judge every field from the image."]
    elif state == "empty":
        lines = ["The segmentation mask of this slice is empty: no lesion is marked on it."]
    else:
        lines = ["Mask measurements (ground truth):"]
        for name in MASK_FIELDS:
            if m.get(name) is not None:
                lines.append(f"- {name}: {m[name]} ({mask_evidence(name, m)})")
        if isinstance(m.get("subregions"), Mapping):
            parts = [f"{k} {_num(v)}" for k, v in sorted(m["subregions"].items())]
            lines.append(f"- subregions (share of the lesion): {', '.join(parts)}")
    seq = sequence_of(grounding.get("modality"))
    hints = {k: v for k, v in intensity_hints(m, seq).items() if judged_on(k, seq)}
    stats = channel_stats(m, seq)
    if hints:
        parts = [
            f"{k} {v if v is not None else 'unclear'}{intensity_evidence(k, stats)}"
            for k, v in sorted(hints.items())
        ]
        lines.append(f"Intensity hints (heuristic): {', '.join(parts)}")
    return "\n".join(lines)


def render_facts(grounding: Mapping[str, Any]) -> str:
    """Sequence, source label and measurements, as the shared head of every user prompt."""
    seq = sequence_of(grounding.get("modality"))
    label = normalise_label(grounding.get("label"))
    lines = [f"Sequence: {seq.value if seq is not None else 'unknown'}"]
    plane = grounding.get("plane")
    if plane in PLANE_NOTES:
        lines.append(f"Plane: {plane} ({PLANE_NOTES[plane]})")
    lines += [
        f"Source label: {label.value if label is not None else 'none'}",
        render_measurements(grounding),
    ]
    return "\n".join(lines)


# What a non-axial image shows, so that a model reading the pixels does not take it for an
# axial slice (ingest stores sagittal and coronal series in their native plane).
PLANE_NOTES = {
    "sagittal": "a side view: superior at the top, anterior on the left; which hemisphere it "
    "shows comes from the slice position, not from the image",
    "coronal": "a front view: superior at the top, the patient's right on the image left",
}


def render_findings(findings: Any) -> str:
    """One line ``field=value, ...`` of the non-null fields, then the rationale."""
    data = _plain(findings) or {}
    values = [f"{k}={_num(data[k])}" for k in FINDING_FIELDS if data.get(k) is not None]
    line = ", ".join(values) if values else "(every field null)"
    rationale = str(data.get("rationale") or "").strip()
    return f"{line}\n  rationale: {rationale}" if rationale else line


def render_votes(votes: Any) -> str:
    if not votes:
        return "Describer votes: none."
    lines = ["Describer votes:"]
    for i, vote in enumerate(votes, start=1):
        text = render_findings(vote) if vote is not None else "(no valid output)"
        lines.append(f"{i}. {text}")
    return "\n".join(lines)


def render_critique(critique: Any) -> str:
    data = _plain(critique) or {}
    lines = []
    for name, verdict in sorted((data.get("verdicts") or {}).items()):
        if verdict is None:
            continue
        action = verdict.get("action")
        target = f" to {verdict['value']}" if action == "downgrade" else ""
        lines.append(f"- {name}: {action}{target} ({verdict.get('reason', '')})")
    return "\n".join(lines) if lines else "- no verdicts"


def render_diagnosis(diagnosis: Any) -> str:
    if diagnosis is None:
        return "Diagnosis: none given."
    data = _plain(diagnosis)
    text = f"Diagnosis: {data.get('diagnosis') or 'unknown'} ({data.get('reasoning', '')})"
    if data.get("conflicts_with_source"):
        text += f"\nConflict with the source: {data.get('conflict_note') or 'unspecified'}"
    return text


def describer_prompt(grounding: Mapping[str, Any]) -> RenderedPrompt:
    revision = ""
    if grounding.get("critique"):
        previous = render_findings(grounding.get("previous") or {})
        revision = (
            f"\n\nYour previous answer:\n{previous}\nThe critic ruled:\n"
            f"{render_critique(grounding['critique'])}\nRevise your answer accordingly."
        )
    prompt = TEMPLATES["describer"].format(facts=render_facts(grounding), revision=revision)
    return RenderedPrompt(SYSTEMS["describer"], prompt)


def diagnostician_prompt(grounding: Mapping[str, Any]) -> RenderedPrompt:
    prompt = TEMPLATES["diagnostician"].format(
        facts=render_facts(grounding), votes=render_votes(grounding.get("votes"))
    )
    return RenderedPrompt(SYSTEMS["diagnostician"], prompt)


def critic_prompt(grounding: Mapping[str, Any]) -> RenderedPrompt:
    prompt = TEMPLATES["critic"].format(
        facts=render_facts(grounding), findings=render_findings(grounding.get("findings") or {})
    )
    return RenderedPrompt(SYSTEMS["critic"], prompt)


def arbiter_prompt(grounding: Mapping[str, Any]) -> RenderedPrompt:
    rule = str(grounding.get("rule") or "majority")
    prompt = TEMPLATES["arbiter"].format(
        facts=render_facts(grounding),
        votes=render_votes(grounding.get("votes")),
        diagnosis=render_diagnosis(grounding.get("diagnosis")),
        rule=rule,
        rule_text=RULE_TEXTS.get(rule, ""),
        threshold=_num(float(grounding.get("review_threshold", 0.75))),
    )
    return RenderedPrompt(SYSTEMS["arbiter"], prompt)


_RENDERERS: dict[str, Callable[[Mapping[str, Any]], RenderedPrompt]] = {
    "describer": describer_prompt,
    "diagnostician": diagnostician_prompt,
    "critic": critic_prompt,
    "arbiter": arbiter_prompt,
}


def render_prompt(role: str, grounding: Mapping[str, Any]) -> RenderedPrompt:
    """System text and user prompt for ``role`` with ``grounding`` rendered in."""
    if role not in _RENDERERS:
        raise ValueError(f"unknown role {role!r}; use one of: {', '.join(_RENDERERS)}")
    return _RENDERERS[role](grounding)


def validation_context(grounding: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pydantic validation context for a response: the slice's known sequence, if any."""
    seq = sequence_of(grounding.get("modality"))
    return {"modality": seq.value} if seq is not None else None


@functools.lru_cache(maxsize=64)
def field_guide(model: type[BaseModel]) -> str:
    """One line per answer key: its allowed values and when it is null, from the model's schema.

    Tool-calling APIs hand the model the schema with its descriptions; a grammar-only API
    (Ollama's ``format``) constrains the output but never shows them, so the prompt carries
    this guide instead.
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    lines = ["Answer keys (JSON):"]
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop, defs)
        description = " ".join(str(prop.get("description") or "").split())
        lines.append(f"- {name}: {kind}" + (f". {description}" if description else ""))
    return "\n".join(lines)


def _kind(prop: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 0) -> str:
    """`a | b | c | null`-style text for one JSON-schema property."""
    options = prop.get("anyOf") or [prop]
    kinds: list[str] = []
    for option in options:
        ref = option.get("$ref")
        target = defs.get(ref.rsplit("/", 1)[-1], {}) if ref else option
        if "enum" in target:
            kinds.append(" | ".join(str(v) for v in target["enum"]))
        elif target.get("type") == "object" and "properties" in target and depth < 1:
            keys = ", ".join(
                f"{k}: {_kind(v, defs, depth + 1)}" for k, v in target["properties"].items()
            )
            kinds.append(f"object {{{keys}}}")
        elif target.get("type") == "array":
            kinds.append(f"list of {_kind(target.get('items') or {}, defs, depth + 1)}")
        elif target.get("type") == "null":
            kinds.append("null")
        else:
            kinds.append(str(target.get("type") or "object"))
    return " | ".join(kinds)
