"""A describer's last answer that still fails validation after the re-asks, repaired field by field.

Small VLMs often repeat one mistake on every re-ask (a modality that contradicts the known
sequence, lesion fields with ``lesion_found: false``, enhancement on a T2 slice). Throwing the
whole answer away loses every valid field it gave; instead :func:`salvage_findings` erases
exactly the fields a validator rejects, with the validator's reason, and keeps the rest as the
describer's vote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from neuroonco.schemas.findings import (
    FINDING_FIELDS,
    SliceFindings,
    finding_value,
    physics_violations,
    sequence_of,
)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def answer_json(text: str | None) -> dict[str, Any] | None:
    """The JSON object in a model's raw answer (bare, fenced, or the first {...} in prose)."""
    if not text:
        return None
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def salvage_findings(
    text: str | None, context: Mapping[str, Any] | None
) -> tuple[SliceFindings | None, dict[str, tuple[Any, str]]]:
    """(repaired findings, field -> (the value it said, why it was erased)); the findings are
    None when nothing usable is left.

    ``context`` is the validation context (the slice's known ``modality``).
    """
    data = answer_json(text)
    if data is None:
        return None, {}
    values: dict[str, Any] = {}
    erased: dict[str, tuple[Any, str]] = {}
    for name in FINDING_FIELDS:
        if data.get(name) is None:
            continue
        try:
            values[name] = finding_value(name, data[name])
        except ValueError as exc:
            erased[name] = (data[name], str(exc))
    known = sequence_of((context or {}).get("modality"))
    said = values.get("modality")
    if known is not None and said is not None and said != known.value:
        why = f"this slice is {known.value} (known from the source), not {said}"
        erased["modality"] = (said, why)
        values.pop("modality")
    # Validate once so that "none" on an unjudged sequence becomes null as the schema says.
    sequence = known or sequence_of(values.get("modality"))
    for name, why in physics_violations(values, sequence).items():
        if name in ("enhancement", "edema") and values.get(name) == "none":
            values[name] = None  # the schema reads "none" there as null: not an erasure
            continue
        erased[name] = (values[name], why)
        values[name] = None
    rationale = data.get("rationale")
    values["rationale"] = rationale if isinstance(rationale, str) else ""
    try:
        findings = SliceFindings.model_validate(values, context=context)
    except ValidationError:
        return None, {}
    if not set(findings.claims()) - {"modality"}:
        return None, erased  # nothing the describer said survived: no vote
    return findings, erased
