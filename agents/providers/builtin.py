"""The ``builtin`` backend: deterministic, offline agents that answer from the grounding alone.

No server, no tokens, no cost; it is the default, so the whole pipeline runs on a fresh machine.
Each role says only what the measurements support:

- describer: ``lesion_found`` from the mask (else the source label: ``no_tumor`` -> false, any
  tumour -> true, none -> null); mask-derived fields from ``measurements``; intensity fields from
  the hints of the slice's channel in ``measurements["intensity"]``; everything else null;
- diagnostician: the source label, with a reasoning built from the findings; a conflict is
  flagged when the label is ``no_tumor`` but a lesion is found, or a tumour label on a slice
  with no lesion (evidence: the mask, else the describers' majority);
- critic: :func:`neuroonco.agents.evidence.check_claims`;
- arbiter: :func:`neuroonco.agents.fusion.fuse`.

Grounding keys read (see :mod:`neuroonco.agents.prompts` for what each holds): ``modality``,
``label``, ``measurements``, ``has_mask``, ``mask_kind``, ``votes``, ``findings``, ``diagnosis``,
``rule``, ``review_threshold``. ``critique`` is ignored: the builtin describer already says only
what the measurements support, so a revision round changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from neuroonco.agents.evidence import (
    channel_stats,
    check_claims,
    intensity_evidence,
    intensity_hints,
    mask_evidence,
    mask_state,
)
from neuroonco.agents.fusion import fuse
from neuroonco.agents.providers.base import (
    AttemptRecord,
    ModelRequest,
    ModelResult,
    Provider,
    ProviderOptions,
)
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion
from neuroonco.schemas.findings import (
    MASK_FIELDS,
    SliceFindings,
    describe_findings,
    finding_value,
    physics_violations,
    sequence_of,
)
from neuroonco.schemas.vocabulary import Diagnosis, normalise_label

Grounding = Mapping[str, Any]


def _lesion_found(grounding: Grounding) -> bool | None:
    state = mask_state(grounding.get("measurements"), grounding.get("has_mask"))
    if state != "none":
        return state == "lesion"
    label = normalise_label(grounding.get("label"))
    return None if label is None else label != Diagnosis.no_tumor


def describe(grounding: Grounding) -> SliceFindings:
    """The describer: exactly what the measurements (or the label, for presence) support."""
    seq = sequence_of(grounding.get("modality"))
    m = grounding.get("measurements") or {}
    lesion = _lesion_found(grounding)
    values: dict[str, Any] = {"lesion_found": lesion, "modality": seq}
    notes: list[str] = []
    if lesion and mask_state(m, grounding.get("has_mask")) == "lesion":
        # A box "mask" (YOLO) has the outline of its box, not of the lesion.
        box = (grounding.get("mask_kind") or m.get("mask_kind")) == "box"
        fields = [n for n in MASK_FIELDS if not (n == "shape" and box)]
        for name in fields:
            value = _valid(name, m.get(name))
            if value is not None:
                values[name] = value
                notes.append(f"{name} {value} ({mask_evidence(name, m)})")
        hints = {k: v for k, v in intensity_hints(m, seq).items() if v is not None}
        for name in physics_violations({**hints, "lesion_found": None}, seq):
            hints.pop(name)
        values.update(hints)
        if hints:
            channel = seq.value if seq is not None else "image"
            stats = channel_stats(m, seq)
            listed = ", ".join(
                f"{k} {v}{intensity_evidence(k, stats)}" for k, v in sorted(hints.items())
            )
            notes.append(f"{channel} intensity: {listed}")
    values["rationale"] = _describer_rationale(grounding, lesion, notes)
    return SliceFindings.model_validate(values)


def _valid(name: str, value: object) -> Any:
    try:
        return finding_value(name, value)
    except ValueError:
        return None


def _describer_rationale(grounding: Grounding, lesion: bool | None, notes: list[str]) -> str:
    state = mask_state(grounding.get("measurements"), grounding.get("has_mask"))
    if state == "empty":
        return "The slice's mask is empty: no lesion on this slice."
    if state == "none":
        label = normalise_label(grounding.get("label"))
        if label is None:
            return "No mask and no source label: lesion presence cannot be assessed."
        if not lesion:
            return "No mask; the source labels the slice no_tumor: no lesion."
        return f"No mask; the source labels the slice {label.value}: features not measured."
    return "Measured from the mask: " + "; ".join(notes) + ". Other fields are not measured."


def _vote(data: object) -> SliceFindings | None:
    if isinstance(data, SliceFindings):
        return data
    if not isinstance(data, Mapping):
        return None
    try:
        return SliceFindings.model_validate(data)
    except ValidationError:
        return None


def _votes(grounding: Grounding) -> list[SliceFindings | None]:
    votes = list(grounding.get("votes") or [])
    if not votes and grounding.get("findings") is not None:
        votes = [grounding["findings"]]
    return [_vote(v) for v in votes]


def diagnose(grounding: Grounding) -> DiagnosisOpinion:
    """The diagnostician: the source label, checked for a conflict with the lesion evidence."""
    label = normalise_label(grounding.get("label"))
    m = grounding.get("measurements")
    votes = _votes(grounding)
    summary = fuse(votes, rule="majority", measurements=m, modality=grounding.get("modality"))
    findings = describe_findings(summary.model_dump()) if any(votes) else "No findings."
    state = mask_state(m, grounding.get("has_mask"))
    evidence = {"lesion": True, "empty": False}.get(state, summary.lesion_found)
    source = "the mask" if state != "none" else "the describers"
    if label is None:
        return DiagnosisOpinion(
            reasoning=f"No source label; the builtin diagnostician does not infer a diagnosis "
            f"from the image. {findings}",
        )
    note = None
    if label == Diagnosis.no_tumor and evidence is True:
        note = f"the source labels the slice no_tumor but {source} shows a lesion"
    elif label != Diagnosis.no_tumor and evidence is False:
        note = f"the source labels the slice {label.value} but {source} shows no lesion"
    return DiagnosisOpinion(
        diagnosis=label,
        reasoning=f"Source label {label.value}. {findings}",
        confidence=0.5 if note else 1.0,
        conflicts_with_source=note is not None,
        conflict_note=note,
    )


def criticise(grounding: Grounding) -> Critique:
    """The critic: the deterministic claim checks of :mod:`neuroonco.agents.evidence`."""
    findings = grounding.get("findings")
    if not isinstance(findings, SliceFindings):
        findings = SliceFindings.model_validate(findings or {})
    return check_claims(
        findings,
        grounding.get("measurements"),
        grounding.get("modality"),
        has_mask=grounding.get("has_mask"),
    )


def arbitrate(grounding: Grounding) -> Consensus:
    """The arbiter: :func:`neuroonco.agents.fusion.fuse` with the grounding's settings."""
    raw = grounding.get("diagnosis")
    diagnosis = raw if isinstance(raw, DiagnosisOpinion) else None
    if isinstance(raw, Mapping):
        diagnosis = DiagnosisOpinion.model_validate(raw)
    return fuse(
        [_vote(v) for v in grounding.get("votes") or []],
        rule=grounding.get("rule") or "majority",
        measurements=grounding.get("measurements"),
        diagnosis=diagnosis,
        review_threshold=float(grounding.get("review_threshold", 0.75)),
        modality=grounding.get("modality"),
        has_mask=grounding.get("has_mask"),
    )


AGENTS: dict[str, tuple[type[BaseModel], Callable[[Grounding], BaseModel]]] = {
    "describer": (SliceFindings, describe),
    "diagnostician": (DiagnosisOpinion, diagnose),
    "critic": (Critique, criticise),
    "arbiter": (Consensus, arbitrate),
}


class BuiltinProvider(Provider):
    """Spec ``builtin``: answers every role from ``request.grounding``; images are not read."""

    supports_multiple_images = True

    def __init__(self, model: str = "", options: ProviderOptions | None = None) -> None:
        # There is one builtin backend: "builtin" and "builtin:" name the same.
        super().__init__("builtin", options)

    async def complete(self, request: ModelRequest) -> ModelResult:
        return self.answer(request)

    def answer(self, request: ModelRequest) -> ModelResult:
        """The synchronous core of :meth:`complete` (no I/O, well under a millisecond)."""
        started = time.perf_counter()
        output: BaseModel | None = None
        response: str | None = None
        error: str | None = None
        outcome = "ok"
        try:
            output = self._run(request)
            response = output.model_dump_json()
        except ValidationError as exc:
            outcome, error = "invalid_output", f"builtin {request.role}: {exc}"
        except (ValueError, TypeError, KeyError) as exc:
            outcome, error = "error", f"builtin {request.role}: {type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000.0
        attempt = AttemptRecord(
            attempt=1, outcome=outcome, error=error, response=response, latency_ms=latency
        )
        return ModelResult(
            spec=self.spec,
            output=output,
            response=response,
            error=error,
            attempts=[attempt],
            input_tokens=0,
            output_tokens=0,
            latency_ms=latency,
            cost_usd=0.0,
        )

    @staticmethod
    def _run(request: ModelRequest) -> BaseModel:
        agent = AGENTS.get(request.role)
        if agent is None:
            agent = next((a for a in AGENTS.values() if a[0] is request.response_model), None)
        if agent is None:
            raise ValueError(
                f"no builtin agent for role {request.role!r} and response model "
                f"{request.response_model.__name__}; roles: {', '.join(AGENTS)}"
            )
        output = agent[1](request.grounding)
        if isinstance(output, request.response_model):
            return output
        # Another response model: let its own validators judge the builtin answer.
        return request.response_model.model_validate(
            output.model_dump(mode="json"), context=request.validation_context
        )
