"""What the measurements say: mask state, evidence texts, intensity hints, and every claim of a
describer checked against them (the builtin critic, the prompts and fusion all read this).

:func:`check_claims` rules on each claimed (non-null) field:

- mask-derived fields (size, shape, spread, location, laterality) must equal the measured value,
  else ``downgrade`` to it, with a reason quoting the numbers ("round_oval claimed but
  circularity 0.41 < 0.5");
- a lesion claimed on a slice whose mask is empty: ``lesion_found`` is downgraded to false and
  every lesion field erased; no lesion claimed where the mask marks one: downgraded to true;
- sequence physics: ``enhancement`` off t1ce and ``edema`` on t1/t1ce are erased;
- intensity fields against the measured hints of the slice's channel: a contradiction is
  downgraded to the hint;
- a claim nothing can check (no mask, no hint) is kept, and the reason says it is unverified.

:func:`apply_critique` applies the verdicts and always returns valid findings. The helpers
:func:`mask_state` and :func:`intensity_hints` read the measurement dict of
:func:`neuroonco.tools.measurements.measure_mask` (``None`` for an empty mask) plus ``intensity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from neuroonco.schemas.agents import Critique, FieldVerdict
from neuroonco.schemas.findings import (
    INTENSITY_FIELDS,
    LESION_FIELDS,
    MASK_FIELDS,
    SliceFindings,
    finding_value,
    physics_violations,
    sequence_of,
)
from neuroonco.schemas.vocabulary import Modality

MaskState = Literal["lesion", "empty", "none"]


def mask_state(measurements: Mapping[str, Any] | None, has_mask: bool | None = None) -> MaskState:
    """``lesion`` (the mask marks one), ``empty`` (a mask with no lesion pixel) or ``none``.

    ``measure_mask`` returns None for an empty mask, so ``has_mask`` tells an empty mask from
    no mask at all when there are no measurements.
    """
    if measurements and measurements.get("area_fraction") is not None:
        return "lesion" if float(measurements["area_fraction"]) > 0 else "empty"
    return "empty" if has_mask else "none"


def channel_stats(measurements: Mapping[str, Any] | None, modality: object) -> Mapping[str, Any]:
    """``measurements["intensity"][channel]`` for the slice's modality, else the only channel
    there is (e.g. ``unknown`` for a 2D image); ``{}`` when there is none."""
    channels = (measurements or {}).get("intensity") or {}
    if not isinstance(channels, Mapping):
        return {}
    seq = sequence_of(modality)
    if seq is not None and seq.value in channels:
        stats = channels[seq.value]
    elif len(channels) == 1:
        stats = next(iter(channels.values()))
    else:
        return {}
    return stats if isinstance(stats, Mapping) else {}


def intensity_hints(measurements: Mapping[str, Any] | None, modality: object) -> dict[str, Any]:
    """Field -> hinted value (a vocabulary string, or None: "cannot tell") for the slice's channel.

    Hints sit directly in the channel's stats (as ``intensity_stats`` writes them) or under
    ``"hints"``; invalid ones are dropped.
    """
    stats = channel_stats(measurements, modality)
    source = stats.get("hints") if isinstance(stats.get("hints"), Mapping) else stats
    hints: dict[str, Any] = {}
    for name in INTENSITY_FIELDS:
        if name in source:
            try:
                hints[name] = finding_value(name, source[name])
            except ValueError:
                continue
    return hints


# Hint -> the number intensity_stats derives it from, with how to read it.
_INTENSITY_NUMBERS = {
    "signal_intensity": ("contrast_ratio", "lesion/normal mean ratio"),
    "texture": ("cv", "lesion coefficient of variation"),
    "margins": ("edge_sharpness", "edge sharpness"),
}


def intensity_evidence(name: str, stats: Mapping[str, Any]) -> str:
    """`` (lesion/normal mean ratio 1.42)``-style note of the number behind a hint, or ''."""
    key, words = _INTENSITY_NUMBERS.get(name, ("", ""))
    value = stats.get(key)
    return f" ({words} {value:.2f})" if isinstance(value, int | float) else ""


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def mask_evidence(name: str, measurements: Mapping[str, Any]) -> str:
    """Why the mask gives its value for ``name``, quoting the measured numbers."""
    measured = measurements.get(name)
    try:
        if name == "size":
            af = float(measurements["area_fraction"])
            rule = {"small": "< 1%", "medium": "between 1% and 5%", "large": ">= 5%"}[measured]
            return f"lesion area {_pct(af)} of the image, {rule}"
        if name == "shape":
            c, e = float(measurements["circularity"]), measurements.get("elongation")
            if measured == "irregular":
                return f"circularity {c:.2f} < 0.5"
            if measured == "round_oval":
                return f"circularity {c:.2f} >= 0.8 and elongation {float(e):.2f} <= 1.5"
            if c >= 0.8 and e is not None:
                return f"circularity {c:.2f} >= 0.8 but elongation {float(e):.2f} > 1.5"
            return f"circularity {c:.2f} between 0.5 and 0.8"
        if name == "spread":
            n = int(measurements["components"])
            if n == 1:
                return "1 connected component"
            ratio = float(measurements["largest_component_ratio"])
            sign = ">=" if ratio >= 0.7 else "<"
            return f"{n} components, the largest {ratio:.0%} of the lesion ({sign} 70%)"
        if name == "location":
            cx, cy = (float(v) for v in measurements["centroid"])
            return f"lesion centroid at x={cx:.2f}, y={cy:.2f} of the image width/height"
        if name == "laterality":
            source = str(measurements.get("laterality_source") or "measured").replace("_", " ")
            left, right = (
                measurements.get("image_left_share"),
                measurements.get("image_right_share"),
            )
            if left is None or right is None:
                return f"side from {source}"
            return f"image left/right lesion shares {left:.2f}/{right:.2f}, side from {source}"
    except (KeyError, TypeError, ValueError):
        pass
    return f"the mask measures {name} as {measured}"


def _check_lesion(
    claims: dict[str, Any], state: MaskState, measurements: Mapping[str, Any] | None
) -> dict[str, FieldVerdict]:
    claimed = claims.get("lesion_found")
    verdicts: dict[str, FieldVerdict] = {}
    if state == "empty":
        if claimed is True:
            verdicts["lesion_found"] = FieldVerdict(
                action="downgrade",
                value="false",
                reason="lesion claimed but the slice's mask is empty (no lesion pixel)",
            )
        elif claimed is False:
            verdicts["lesion_found"] = FieldVerdict(action="keep", reason="the mask is empty")
        for name in LESION_FIELDS:
            if name in claims:
                verdicts[name] = FieldVerdict(
                    action="erase", reason=f"{name} claimed but the slice's mask is empty"
                )
    elif state == "lesion" and claimed is not None:
        af = _pct(float((measurements or {})["area_fraction"]))
        verdicts["lesion_found"] = (
            FieldVerdict(action="keep", reason=f"the mask marks a lesion ({af} of the image)")
            if claimed
            else FieldVerdict(
                action="downgrade",
                value="true",
                reason=f"no lesion claimed but the mask marks one covering {af} of the image",
            )
        )
    elif claimed is not None:
        verdicts["lesion_found"] = FieldVerdict(
            action="keep", reason="no mask to check against: kept unverified"
        )
    return verdicts


def _check_mask_field(
    name: str, claimed: str, state: MaskState, measurements: Mapping[str, Any] | None
) -> FieldVerdict:
    measured = (measurements or {}).get(name) if state == "lesion" else None
    if measured is None:
        why = "no mask" if state == "none" else "the mask does not measure it"
        return FieldVerdict(action="keep", reason=f"{why}: {name} {claimed} kept unverified")
    evidence = mask_evidence(name, measurements or {})
    if claimed == measured:
        return FieldVerdict(action="keep", reason=f"{claimed} matches the mask: {evidence}")
    return FieldVerdict(
        action="downgrade",
        value=str(measured),
        reason=f"{claimed} claimed but {evidence}: measured {name} is {measured}",
    )


def _check_intensity_field(
    name: str, claimed: str, hints: dict[str, Any], stats: Mapping[str, Any], channel: str
) -> FieldVerdict:
    hint = hints.get(name)
    if hint is None:
        return FieldVerdict(
            action="keep", reason=f"no {channel} intensity hint for {name}: kept unverified"
        )
    number = intensity_evidence(name, stats)
    if claimed == hint:
        return FieldVerdict(
            action="keep", reason=f"{claimed} matches the {channel} intensity hint{number}"
        )
    return FieldVerdict(
        action="downgrade",
        value=str(hint),
        reason=f"{claimed} claimed but the {channel} intensity measurements suggest {hint}{number}",
    )


def _check_modality(claimed: str, known: Modality | None) -> FieldVerdict:
    if known is None:
        return FieldVerdict(action="keep", reason="the source does not say: kept unverified")
    if claimed == known.value:
        return FieldVerdict(action="keep", reason="matches the source's sequence")
    return FieldVerdict(
        action="downgrade", value=known.value, reason=f"the source says this slice is {known.value}"
    )


def check_claims(
    findings: SliceFindings,
    measurements: Mapping[str, Any] | None,
    modality: str | None,
    *,
    has_mask: bool | None = None,
) -> Critique:
    """Rule on every claim of ``findings``; ``modality`` is the slice's known sequence, if any."""
    claims = findings.claims()
    known = sequence_of(modality)
    sequence = known or findings.modality
    state = mask_state(measurements, has_mask)
    verdicts: dict[str, FieldVerdict] = {}
    if "modality" in claims:
        verdicts["modality"] = _check_modality(claims["modality"], known)
    verdicts.update(_check_lesion(claims, state, measurements))
    physics = physics_violations({**claims, "lesion_found": None}, sequence)
    hints = intensity_hints(measurements, sequence)
    stats = channel_stats(measurements, sequence)
    channel = sequence.value if sequence is not None else "image"
    for name in LESION_FIELDS:
        if name not in claims or name in verdicts:
            continue
        if name in physics:
            verdicts[name] = FieldVerdict(action="erase", reason=physics[name])
        elif name in MASK_FIELDS:
            verdicts[name] = _check_mask_field(name, claims[name], state, measurements)
        else:
            verdicts[name] = _check_intensity_field(name, claims[name], hints, stats, channel)
    return Critique(verdicts=verdicts, summary=_summarise(verdicts))


def _summarise(verdicts: dict[str, FieldVerdict]) -> str:
    if not verdicts:
        return "no claims to check"
    changed = {a: [n for n, v in verdicts.items() if v.action == a] for a in ("downgrade", "erase")}
    if not any(changed.values()):
        return f"all {len(verdicts)} claims consistent with the evidence"
    parts = [f"{len(verdicts)} claims checked"]
    if changed["downgrade"]:
        parts.append(f"downgraded: {', '.join(changed['downgrade'])}")
    if changed["erase"]:
        parts.append(f"erased: {', '.join(changed['erase'])}")
    return "; ".join(parts)


def apply_critique(findings: SliceFindings, critique: Critique) -> SliceFindings:
    """``findings`` with the critique's erasures and downgrades applied.

    The result is always valid: values the new lesion status or sequence forbids are dropped
    (e.g. an LLM critic downgrading lesion_found to false without erasing the lesion fields).
    """
    values = findings.model_dump(mode="json")
    changes: list[str] = []
    for name, verdict in critique.verdicts.items():
        if verdict.action == "erase" and values.get(name) is not None:
            values[name] = None
            changes.append(f"{name} removed")
        elif verdict.action == "downgrade":
            values[name] = finding_value(name, verdict.value)
            changes.append(f"{name} set to {str(verdict.value).lower()}")
    for name in physics_violations(values, sequence_of(values.get("modality"))):
        values[name] = None
    if changes:
        values["rationale"] = f"{values.get('rationale') or ''} Corrected by the critic: " + (
            ", ".join(changes) + "."
        )
        values["rationale"] = values["rationale"].strip()
    return SliceFindings.model_validate(values)
