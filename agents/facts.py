"""Which fact wins: the one policy every model answer goes through before it is kept.

Facts are what the source and the mask settle outright, whatever a model says:

- ``lesion_found`` from the mask (a lesion pixel or an empty mask);
- the mask-measured fields (size, shape, spread, location, laterality; not shape for a box);
- every lesion field on an empty mask (null), and sequence physics on the known sequence
  (enhancement off t1ce, edema on t1/t1ce: null);
- the known sequence (modality) and the source's label (diagnosis).

:func:`enforce_critique` re-imposes them on a model critic's verdicts, :func:`arbitrate` on the
fused consensus (a model arbiter only contributes its rationale and values for fields no fact
decides, which the fusion rule left open and a describer gave), :func:`enforce_diagnosis` on the
diagnostician's opinion. Each overruled value becomes an :class:`Override` (which step and model
said what, what was kept, and why) that the graph stores with the annotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from neuroonco.agents.evidence import MaskState, check_claims, mask_evidence, mask_state
from neuroonco.agents.fusion import consensus_of, fused_values
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion, FieldVerdict
from neuroonco.schemas.findings import (
    FINDING_FIELDS,
    LESION_FIELDS,
    MASK_FIELDS,
    SliceFindings,
    finding_value,
    judged_on,
    sequence_of,
)
from neuroonco.schemas.vocabulary import Diagnosis, Modality, normalise_label

_UNSET = object()


@dataclass(frozen=True)
class Override:
    """One value a step proposed and the policy did not keep."""

    step: str  # describer | critic | diagnostician | arbiter
    model: str
    field: str
    said: Any
    kept: Any
    reason: str
    target: str | None = None  # the describer key a describer or critic step was about

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """The facts of one slice, read from its grounding (see :mod:`neuroonco.agents.prompts`)."""

    modality: Modality | None
    label: Diagnosis | None
    state: MaskState
    measurements: Mapping[str, Any]
    has_mask: bool | None
    box: bool

    @classmethod
    def of(cls, grounding: Mapping[str, Any]) -> Facts:
        m = grounding.get("measurements") or {}
        kind = grounding.get("mask_kind") or m.get("mask_kind")
        try:
            label = normalise_label(grounding.get("label"))
        except ValueError:
            label = None
        return cls(
            modality=sequence_of(grounding.get("modality")),
            label=label,
            state=mask_state(m, grounding.get("has_mask")),
            measurements=m,
            has_mask=grounding.get("has_mask"),
            box=kind == "box",
        )

    @property
    def lesion_found(self) -> bool | None:
        return {"lesion": True, "empty": False}.get(self.state)

    def decided(self) -> dict[str, tuple[Any, str]]:
        """Field -> (the value the facts give it, why), for every field a fact settles."""
        out: dict[str, tuple[Any, str]] = {}
        if self.modality is not None:
            out["modality"] = (self.modality.value, f"the source says the slice is {self.modality}")
        if self.state == "empty":
            out["lesion_found"] = (False, "the slice's mask is empty (no lesion pixel)")
            for name in LESION_FIELDS:
                out[name] = (None, f"the slice's mask is empty: there is no lesion to give {name}")
        elif self.state == "lesion":
            area = float(self.measurements.get("area_fraction") or 0.0)
            why = f"the mask marks a lesion ({100 * area:.2f}% of the image)"
            out["lesion_found"] = (True, why)
            for name in MASK_FIELDS:
                if name == "shape" and self.box:
                    continue  # a box's outline is not the lesion's
                value = _parsed(name, self.measurements.get(name))
                if value is not None:
                    evidence = mask_evidence(name, self.measurements)
                    out[name] = (value, f"the mask measures {name} {value}: {evidence}")
        if self.modality is not None:
            for name in ("enhancement", "edema"):
                if not judged_on(name, self.modality) and name not in out:
                    out[name] = (None, f"{name} is not judged on {self.modality}")
        return out


def _parsed(name: str, value: object) -> Any:
    try:
        return finding_value(name, value)
    except ValueError:
        return None


def _after(claimed: Any, verdict: FieldVerdict | None, name: str) -> Any:
    """The value a field has once ``verdict`` is applied to ``claimed``."""
    if verdict is None or verdict.action == "keep":
        return claimed
    if verdict.action == "erase":
        return None
    return _parsed(name, verdict.value)


def enforce_critique(
    critique: Critique,
    findings: SliceFindings,
    facts: Facts,
    *,
    model: str,
    target: str | None = None,
) -> tuple[Critique, list[Override]]:
    """A critic's verdicts with every fact re-imposed, and what was overruled.

    For a claimed field a fact settles, the verdict is the deterministic check's (keep when the
    claim matches, downgrade or erase otherwise); a verdict that would change an unclaimed fact
    field to anything but the fact is dropped. Fields no fact settles keep the model's verdict
    (intensity hints are heuristics: they do not overrule it).
    """
    decided = facts.decided()
    checks = check_claims(
        findings, facts.measurements, facts.modality, has_mask=facts.has_mask
    ).verdicts
    claims = findings.claims()
    verdicts = critique.verdicts.as_dict()
    overrides: list[Override] = []
    for name in FINDING_FIELDS:
        if name not in decided:
            continue
        fact, why = decided[name]
        given = verdicts.get(name)
        claimed = claims.get(name)
        after = _after(claimed, given, name)
        if after == fact or (claimed is None and after is None):
            continue  # the fact holds, or the describer abstained and nothing was added
        if claimed is not None:
            # The check rules on every claim; the physics and empty-mask erasures are in it.
            ruling = checks.get(name) or FieldVerdict(action="erase", reason=why)
            if _after(claimed, ruling, name) != fact:
                ruling = _ruling(fact, why)
            verdicts[name] = ruling
        else:
            verdicts.pop(name, None)
        overrides.append(
            Override(
                step="critic",
                model=model,
                field=name,
                said=_verdict_text(given),
                kept=_verdict_text(verdicts.get(name)),
                reason=why,
                target=target,
            )
        )
    kept = Critique(verdicts=verdicts, summary=critique.summary)
    return kept, overrides


def _ruling(fact: Any, why: str) -> FieldVerdict:
    if fact is None:
        return FieldVerdict(action="erase", reason=why)
    value = "true" if fact is True else "false" if fact is False else str(fact)
    return FieldVerdict(action="downgrade", value=value, reason=why)


def _verdict_text(verdict: FieldVerdict | None) -> str:
    if verdict is None:
        return "no verdict"
    return f"downgrade to {verdict.value}" if verdict.action == "downgrade" else verdict.action


def enforce_diagnosis(
    opinion: DiagnosisOpinion, facts: Facts, *, model: str
) -> tuple[DiagnosisOpinion, list[Override]]:
    """A known source label is the diagnosis: a model that says otherwise is recorded as flagging
    a conflict (the slice goes to review), and its own answer is kept in the differential."""
    label = facts.label
    if label is None or opinion.diagnosis == label:
        return opinion, []
    said = opinion.diagnosis
    differential = [d for d in [said, *opinion.differential] if d is not None and d != label]
    note = opinion.conflict_note or (
        f"the model read the slice as {said.value if said else 'undetermined'}, "
        f"the source says {label.value}"
    )
    kept = opinion.model_copy(
        update={
            "diagnosis": label,
            "differential": list(dict.fromkeys(differential)),
            "conflicts_with_source": said is not None or opinion.conflicts_with_source,
            "conflict_note": note if said is not None else opinion.conflict_note,
        }
    )
    override = Override(
        step="diagnostician",
        model=model,
        field="diagnosis",
        said=said.value if said is not None else None,
        kept=label.value,
        reason=f"the source labels the slice {label.value}",
    )
    return kept, [override]


def arbitrate(
    votes: Sequence[SliceFindings],
    facts: Facts,
    *,
    rule: str,
    diagnosis: DiagnosisOpinion | None,
    review_threshold: float,
    n_votes: int,
    proposal: Consensus | None = None,
    model: str = "builtin",
    review: Sequence[str] = (),
) -> tuple[Consensus, list[Override]]:
    """The slice's consensus: the fusion rule over the votes, the facts re-imposed, the label rule.

    ``proposal`` is a model arbiter's answer: its rationale is kept, and its value for a field
    is taken only where no fact decides the field, the rule left it open and some describer
    voted that value; any other difference is recorded as overruled.
    """
    fused = fused_values(votes, rule=rule, measurements=facts.measurements, has_mask=facts.has_mask)
    overrides: list[Override] = []
    decided = facts.decided()
    for name, (fact, why) in decided.items():
        if name in fused and fused[name] != fact:
            if fused[name] is not None:  # filling an abstention overrules nobody
                overrides.append(Override("arbiter", f"rule:{rule}", name, fused[name], fact, why))
            fused[name] = fact
    if fused.get("lesion_found") is False:
        fused.update(dict.fromkeys(LESION_FIELDS))
    sequence = facts.modality or _common_modality(votes)
    rationale = None
    if proposal is not None:
        rationale = proposal.rationale.strip() or None
        overrides += _weigh_proposal(proposal, fused, votes, decided, model)
    consensus = consensus_of(
        fused,
        votes,
        n_votes=n_votes,
        sequence=sequence,
        rule=rule,
        diagnosis=diagnosis,
        review_threshold=review_threshold,
        review=review,
        rationale=rationale,
    )
    if facts.label is not None and consensus.diagnosis != facts.label:
        if consensus.diagnosis is not None:
            said, why = consensus.diagnosis.value, f"the source labels the slice {facts.label}"
            overrides.append(Override("arbiter", model, "diagnosis", said, facts.label.value, why))
        consensus.diagnosis = facts.label
    if proposal is not None:
        overrides += _weigh_summary(proposal, consensus, decided, model, sequence)
    return consensus, overrides


def _weigh_proposal(
    proposal: Consensus,
    fused: dict[str, Any],
    votes: Sequence[SliceFindings],
    decided: Mapping[str, Any],
    model: str,
) -> list[Override]:
    """Take a model arbiter's values where allowed (in place); the overruled ones, recorded."""
    overrides = []
    offered = proposal.lesion_values()
    given = {name: {v.lesion_values()[name] for v in votes} - {None} for name in fused}
    for name in fused:
        said = offered.get(name)
        if said == fused[name]:
            continue
        if name in decided:
            why = decided[name][1]
        elif fused[name] is None and said in given[name] and _open(name, fused):
            fused[name] = said  # the rule left it open; a describer gave it: a fair pick
            continue
        elif said is not None and said not in given[name]:
            why = f"no describer voted {name} {said}"
        else:
            why = "the fusion rule decides voted fields"
        overrides.append(Override("arbiter", model, name, said, fused[name], why))
    return overrides


def _open(name: str, fused: Mapping[str, Any]) -> bool:
    """Whether a proposal may fill ``name``: lesion fields only once a lesion is agreed."""
    return name == "lesion_found" or fused.get("lesion_found") is True


def _weigh_summary(
    proposal: Consensus,
    consensus: Consensus,
    decided: Mapping[str, Any],
    model: str,
    sequence: Any,
) -> list[Override]:
    """Modality and status a model arbiter gave that the facts and the rule did not keep."""
    overrides = []
    if proposal.modality != consensus.modality and proposal.modality is not None:
        why = decided["modality"][1] if "modality" in decided else "the votes' sequence"
        overrides.append(
            Override(
                "arbiter",
                model,
                "modality",
                proposal.modality.value,
                getattr(sequence, "value", sequence),
                why,
            )
        )
    if proposal.diagnosis is not None and proposal.diagnosis != consensus.diagnosis:
        kept = consensus.diagnosis.value if consensus.diagnosis is not None else None
        why = "the diagnosis is the source label, else the diagnostician's"
        overrides.append(
            Override("arbiter", model, "diagnosis", proposal.diagnosis.value, kept, why)
        )
    if proposal.status != consensus.status:
        why = (
            f"status follows the agreement ({consensus.overall_agreement:.2f}), the review "
            "threshold and the diagnosis"
        )
        overrides.append(
            Override("arbiter", model, "status", proposal.status, consensus.status, why)
        )
    return overrides


def _common_modality(votes: Sequence[SliceFindings]) -> Modality | None:
    seen = [v.modality for v in votes if v.modality is not None]
    return max(set(seen), key=seen.count) if seen else None
