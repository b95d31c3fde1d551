"""The arbiter's deterministic fusion of N describer votes into one :class:`Consensus`.

Rules, applied per field (``lesion_found`` and the lesion fields); a null value is an abstention:

- ``unanimous``: the value when every non-abstaining vote gives it, else null;
- ``majority``: the most common value when more than half of all votes (abstentions included)
  give it, else null; a tie therefore gives null;
- ``seed_rules``: MM-NeuroOnco's two-model fusion, generalised to N: when the non-abstaining
  votes agree the value is kept; when they disagree on a mask-derived field (size, shape, spread,
  location, laterality, and lesion_found) the measured value is taken; any other disagreement
  gives null. Like the paper, the measurement only settles disputes; it never overrides an
  agreement (the critic has already checked agreements against the measurements).

Agreement of a field is the share of votes equal to the fused value; when the fused value is
null it is 1.0 if every vote abstained, else 0.0 (abstentions count as disagreement). The overall
agreement is the mean over fields with at least one vote (0.0 when nobody voted on anything).
The lesion fields are cleared when the fused ``lesion_found`` is false, or null while some vote
denies a lesion (its presence is disputed).
Status: ``rejected`` with no valid vote, ``needs_review`` below ``review_threshold`` or when the
diagnostician flags a conflict with the source label, else ``accepted``.

That agreement is measured after critique, where the critic has already pulled the mask fields to
the measurement: on its own it rarely falls below the threshold. :func:`opinion_agreement`
measures what the describers said first, before any critique, on the fields that are opinions
(all fields without a mask; with a mask, not ``lesion_found`` and the mask fields, which are
facts): the graph also sends a slice to review when that agreement is below the threshold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from neuroonco.agents.evidence import mask_state
from neuroonco.schemas.agents import Consensus, DiagnosisOpinion
from neuroonco.schemas.findings import (
    LESION_FIELDS,
    MASK_FIELDS,
    SliceFindings,
    describe_findings,
    physics_violations,
    sequence_of,
)

Rule = Literal["unanimous", "majority", "seed_rules"]
RULES: tuple[str, ...] = ("unanimous", "majority", "seed_rules")
FUSED_FIELDS: tuple[str, ...] = ("lesion_found", *LESION_FIELDS)


def _unanimous(values: list[Any]) -> Any:
    given = {v for v in values if v is not None}
    return given.pop() if len(given) == 1 else None


def _majority(values: list[Any]) -> Any:
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    value, count = counts.most_common(1)[0]
    return value if count > len(values) / 2 else None


def _measured(name: str, measurements: Mapping[str, Any] | None, has_mask: bool | None) -> Any:
    state = mask_state(measurements, has_mask)
    if name == "lesion_found":
        return {"lesion": True, "empty": False}.get(state)
    return (measurements or {}).get(name) if state == "lesion" else None


def _choose(
    name: str,
    values: list[Any],
    rule: str,
    measurements: Mapping[str, Any] | None,
    has_mask: bool | None,
) -> Any:
    if rule == "unanimous":
        return _unanimous(values)
    if rule == "majority":
        return _majority(values)
    given = {v for v in values if v is not None}
    if len(given) <= 1:
        return given.pop() if given else None
    if name in MASK_FIELDS or name == "lesion_found":
        return _measured(name, measurements, has_mask)
    return None


def opinion_agreement(
    first_votes: Sequence[SliceFindings], *, measured: bool
) -> tuple[float | None, dict[str, float]]:
    """(overall, per field) agreement of the describers' first votes on opinion fields.

    A field's agreement is the share of all votes (abstentions included) that give its most
    common value; fields nobody voted on are left out; ``overall`` is their mean. ``measured``:
    the slice has a mask, so ``lesion_found`` and the mask fields are facts, not opinions, and
    are left out. ``(None, {})`` with fewer than two votes: one describer cannot disagree.
    """
    if len(first_votes) < 2:
        return None, {}
    facts = {"lesion_found", *MASK_FIELDS} if measured else set()
    table = [v.lesion_values() for v in first_votes]
    shares: dict[str, float] = {}
    for name in FUSED_FIELDS:
        if name in facts:
            continue
        given = Counter(row[name] for row in table if row[name] is not None)
        if given:
            shares[name] = round(given.most_common(1)[0][1] / len(table), 4)
    if not shares:
        return None, {}
    return round(sum(shares.values()) / len(shares), 4), shares


def _agreement(values: list[Any], chosen: Any) -> float:
    if chosen is None:
        return 1.0 if all(v is None for v in values) else 0.0
    return sum(v == chosen for v in values) / len(values)


def fuse(
    votes: Sequence[SliceFindings | None],
    *,
    rule: Rule = "majority",
    measurements: Mapping[str, Any] | None = None,
    diagnosis: DiagnosisOpinion | None = None,
    review_threshold: float = 0.75,
    modality: str | None = None,
    has_mask: bool | None = None,
) -> Consensus:
    """Fuse describer votes (None = a describer that gave no valid output) into a consensus.

    ``modality`` is the slice's known sequence (else the votes' most common one); ``has_mask``
    tells an empty mask from no mask when ``measurements`` is None (see ``mask_state``).
    """
    valid = [v for v in votes if isinstance(v, SliceFindings)]
    sequence = sequence_of(modality) or _common_modality(valid)
    fused = fused_values(valid, rule=rule, measurements=measurements, has_mask=has_mask)
    return consensus_of(
        fused,
        valid,
        n_votes=len(votes),
        sequence=sequence,
        rule=rule,
        diagnosis=diagnosis,
        review_threshold=review_threshold,
    )


def fused_values(
    valid: Sequence[SliceFindings],
    *,
    rule: str = "majority",
    measurements: Mapping[str, Any] | None = None,
    has_mask: bool | None = None,
) -> dict[str, Any]:
    """Field -> the value ``rule`` gives from the valid votes (lesion_found and lesion fields)."""
    if rule not in RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; use one of: {', '.join(RULES)}")
    table = [v.lesion_values() for v in valid]
    fused = {
        name: _choose(name, [row[name] for row in table], rule, measurements, has_mask)
        for name in FUSED_FIELDS
    }
    denied = any(row["lesion_found"] is False for row in table)
    if fused["lesion_found"] is False or (fused["lesion_found"] is None and denied):
        # No lesion, or its very presence disputed: there is nothing agreed to describe.
        fused.update(dict.fromkeys(LESION_FIELDS))
    return fused


def consensus_of(
    fused: Mapping[str, Any],
    valid: Sequence[SliceFindings],
    *,
    n_votes: int,
    sequence: Any,
    rule: str,
    diagnosis: DiagnosisOpinion | None = None,
    review_threshold: float = 0.75,
    review: Sequence[str] = (),
    rationale: str | None = None,
) -> Consensus:
    """The consensus for decided field values: agreement with the votes, status, rationale.

    ``review`` holds reasons the slice needs a person whatever the agreement (a failed critic...);
    ``rationale`` replaces the deterministic text (a model arbiter's own words).
    """
    label = diagnosis.diagnosis if diagnosis is not None else None
    if not valid:
        return Consensus(
            modality=sequence,
            diagnosis=label,
            status="rejected",
            rationale=f"No valid describer vote among {n_votes}.",
        )
    values = dict(fused)
    for name in physics_violations(values, sequence):
        values[name] = None
    table = [v.lesion_values() for v in valid]
    agreement = {name: _agreement([row[name] for row in table], values[name]) for name in values}
    voted = [name for name in FUSED_FIELDS if any(row[name] is not None for row in table)]
    overall = sum(agreement[n] for n in voted) / len(voted) if voted else 0.0
    conflict = diagnosis is not None and diagnosis.conflicts_with_source
    flagged = overall < review_threshold or conflict or bool(review)
    if rationale is None:
        rationale = _rationale(values, sequence, rule, len(valid), voted, diagnosis)
    return Consensus(
        **values,
        modality=sequence,
        diagnosis=label,
        agreement={name: round(share, 4) for name, share in agreement.items()},
        overall_agreement=round(overall, 4),
        status="needs_review" if flagged else "accepted",
        rationale=rationale,
    )


def _common_modality(votes: list[SliceFindings]) -> Any:
    counts = Counter(v.modality for v in votes if v.modality is not None)
    return counts.most_common(1)[0][0] if counts else None


def _rationale(
    fused: dict[str, Any],
    sequence: Any,
    rule: str,
    n_votes: int,
    voted: list[str],
    diagnosis: DiagnosisOpinion | None,
) -> str:
    """Findings sentence, what the vote left open, and the diagnosis: deterministic text."""
    parts = [describe_findings({**fused, "modality": sequence})]
    disputed = [name for name in voted if fused[name] is None]
    if disputed:
        parts.append(f"Left unset for lack of agreement: {', '.join(disputed)}.")
    if diagnosis is not None and diagnosis.diagnosis is not None:
        parts.append(f"Diagnosis: {diagnosis.diagnosis.value.replace('_', ' ')}.")
    if diagnosis is not None and diagnosis.conflicts_with_source and diagnosis.conflict_note:
        parts.append(f"Conflict with the source: {diagnosis.conflict_note}")
    vote_word = "vote" if n_votes == 1 else "votes"
    parts.append(f"({n_votes} describer {vote_word} fused by {rule.replace('_', ' ')}.)")
    return " ".join(parts)
