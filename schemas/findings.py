"""What a describer says about one slice: :class:`SliceFindings`, with the rules in the schema.

The field descriptions are written for the model to read (they become the JSON schema a VLM is
given), and the validators' error texts become instructor's re-ask prompt, so every message says
what to change. Two kinds of rule live here:

- vocabulary: each categorical field goes through :func:`~neuroonco.schemas.vocabulary.normalise`,
  so "Ring-enhancing" becomes ``ring`` and "T1 post-contrast" becomes ``t1ce``;
- physics: ``enhancement`` is only judged on ``t1ce``, ``edema`` never on ``t1``/``t1ce``, and a
  slice with ``lesion_found=False`` has no lesion attributes; ``none`` for a field on a sequence
  where it is not judged is read as null rather than rejected.

The sequence a slice shows is taken from the validation context (``{"modality": "t2"}``, the
source's known modality, passed by the graph) and otherwise from the model's own ``modality``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from neuroonco.schemas.vocabulary import (
    FIELDS,
    Edema,
    Enhancement,
    Laterality,
    Location,
    Margins,
    Modality,
    Shape,
    SignalIntensity,
    Size,
    Spread,
    Texture,
    normalise,
)

# Lesion attributes, in the order of the vocabulary table.
LESION_FIELDS: tuple[str, ...] = (
    "size",
    "shape",
    "spread",
    "location",
    "laterality",
    "margins",
    "texture",
    "enhancement",
    "edema",
    "signal_intensity",
)
# Attributes the mask measures: the measured value is ground truth for them.
MASK_FIELDS: tuple[str, ...] = ("size", "shape", "spread", "location", "laterality")
# Attributes judged from the image intensities (measurements may carry hints for them).
INTENSITY_FIELDS: tuple[str, ...] = (
    "signal_intensity",
    "texture",
    "margins",
    "enhancement",
    "edema",
)
# Every field a critic may rule on.
FINDING_FIELDS: tuple[str, ...] = ("lesion_found", "modality", *LESION_FIELDS)

_ENUM_FIELDS = ("modality", *LESION_FIELDS)
_NO_EDEMA_SEQUENCES = (Modality.t1, Modality.t1ce)


def sequence_of(value: object) -> Modality | None:
    """A modality value (enum, wild string or None) as a :class:`Modality`, None when unusable."""
    try:
        return normalise(Modality, value)
    except ValueError:
        return None


def judged_on(name: str, sequence: Modality | None) -> bool:
    """Whether field ``name`` can be judged on ``sequence`` (enhancement: t1ce; edema: not t1s)."""
    if name == "enhancement":
        return sequence == Modality.t1ce
    if name == "edema":
        return sequence not in _NO_EDEMA_SEQUENCES
    return True


def physics_violations(values: Mapping[str, Any], sequence: Modality | None) -> dict[str, str]:
    """Field -> what to change, for every value the slice's sequence or lesion status forbids."""
    problems: dict[str, str] = {}
    seq = sequence.value if sequence is not None else "of unknown sequence"
    if values.get("lesion_found") is False:
        for name in LESION_FIELDS:
            if values.get(name) is not None:
                problems[name] = (
                    f"lesion_found is false, so there is no lesion to describe: set {name} to "
                    "null (or set lesion_found to true if you see a lesion)"
                )
    if values.get("enhancement") is not None and sequence != Modality.t1ce:
        problems.setdefault(
            "enhancement",
            f"enhancement can only be judged on t1ce; this slice is {seq}: set enhancement to null",
        )
    if values.get("edema") is not None and sequence in _NO_EDEMA_SEQUENCES:
        problems.setdefault(
            "edema",
            f"edema can only be judged on t2 or flair; this slice is {seq}: set edema to null",
        )
    return problems


class FindingValues(BaseModel):
    """The vocabulary fields shared by a describer's findings and the arbiter's consensus."""

    lesion_found: bool | None = Field(
        default=None,
        description=(
            "true when the slice shows a tumour or other focal abnormality, false when it shows "
            "none, null when you cannot tell. When false, every lesion field must be null."
        ),
    )
    modality: Modality | None = Field(
        default=None,
        description=(
            "MRI sequence of the slice: t1 (native T1), t1ce (T1 after gadolinium contrast), "
            "t2, flair (T2 FLAIR). Use the sequence you are told; null when unknown."
        ),
    )
    size: Size | None = Field(
        default=None,
        description="Lesion area on this slice: small (< 1% of the image), medium (1% to < 5%), "
        "large (>= 5%). null when there is no lesion or you cannot assess it.",
    )
    shape: Shape | None = Field(
        default=None,
        description="Outline of the largest lesion component: round_oval (circularity >= 0.8 and "
        "elongation <= 1.5), lobulated (between), irregular (circularity < 0.5). null when you "
        "cannot assess it.",
    )
    spread: Spread | None = Field(
        default=None,
        description="solitary (one component), dominant_with_satellites (largest component "
        ">= 70% of the lesion area), multifocal (several comparable foci). null when you cannot "
        "assess it.",
    )
    location: Location | None = Field(
        default=None,
        description="Cell of a 3x3 grid over the image that holds the lesion centroid, as the "
        "image is displayed: upper_left ... lower_right. null when you cannot assess it.",
    )
    laterality: Laterality | None = Field(
        default=None,
        description="The patient's side: left, right, midline (crossing or on the midline), "
        "bilateral (both hemispheres). Images follow radiological convention (patient's left on "
        "the image's right) unless told otherwise. null when you cannot assess it.",
    )
    margins: Margins | None = Field(
        default=None,
        description="well_circumscribed (sharp border against brain) or ill_defined (blurred, "
        "infiltrative border). null when you cannot assess it.",
    )
    texture: Texture | None = Field(
        default=None,
        description="Internal signal of the lesion: homogeneous or heterogeneous (necrosis, cysts, "
        "haemorrhage, mixed components). null when you cannot assess it.",
    )
    enhancement: Enhancement | None = Field(
        default=None,
        description="Contrast enhancement pattern, ONLY on t1ce: none, solid, ring (rim around a "
        "non-enhancing core), patchy. Must be null on t1, t2 and flair.",
    )
    edema: Edema | None = Field(
        default=None,
        description="Peritumoural edema, ONLY on t2 or flair (bright rim of signal around the "
        "lesion): none, mild, extensive (larger than the lesion). Must be null on t1 and t1ce.",
    )
    signal_intensity: SignalIntensity | None = Field(
        default=None,
        description="Lesion signal against normal white matter on this sequence: hyperintense, "
        "hypointense, isointense, mixed. null when you cannot assess it.",
    )
    rationale: str = Field(
        default="",
        description="One to three sentences: the visual evidence for the values above, and why "
        "any field was left null.",
    )

    @field_validator(*_ENUM_FIELDS, mode="before")
    @classmethod
    def _normalise_vocabulary(cls, value: object, info: ValidationInfo) -> object:
        # normalise raises a ValueError naming the allowed values: that text is the re-ask.
        return normalise(FIELDS[info.field_name], value)

    @model_validator(mode="after")
    def _check_physics(self, info: ValidationInfo) -> FindingValues:
        known = sequence_of((info.context or {}).get("modality"))
        problems: list[str] = []
        if known is not None and self.modality not in (None, known):
            problems.append(
                f"this slice is {known.value} (known from the source), not "
                f"{self.modality.value}: set modality to {known.value}"
            )
        elif known is not None:
            self.modality = known
        sequence = known or self.modality
        # "none" on a sequence where the field is not judged says nothing: it is null, not an
        # error worth a re-ask (small VLMs fill every field).
        if self.enhancement == Enhancement.none and not judged_on("enhancement", sequence):
            self.enhancement = None
        if self.edema == Edema.none and not judged_on("edema", sequence):
            self.edema = None
        violations = physics_violations(self.lesion_values(), sequence)
        if self.lesion_found is False and violations:
            # One instruction for all of them rather than ten near-identical sentences.
            problems.append(
                f"lesion_found is false, so there is no lesion to describe: set "
                f"{', '.join(violations)} to null (or set lesion_found to true if you see a lesion)"
            )
        else:
            problems.extend(violations.values())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def lesion_values(self) -> dict[str, Any]:
        """lesion_found and the lesion fields as plain values (enum members as strings)."""
        data = {name: getattr(self, name) for name in LESION_FIELDS}
        out: dict[str, Any] = {k: (v.value if v is not None else None) for k, v in data.items()}
        out["lesion_found"] = self.lesion_found
        return out

    def claims(self) -> dict[str, Any]:
        """The non-null values among lesion_found, modality and the lesion fields."""
        values = self.lesion_values()
        values["modality"] = self.modality.value if self.modality is not None else None
        return {name: values[name] for name in FINDING_FIELDS if values[name] is not None}


class SliceFindings(FindingValues):
    """A describer's findings for one MRI slice. Leave a field null when the slice does not show
    it: omission is acceptable, fabrication is not."""


def finding_value(name: str, value: object) -> Any:
    """``value`` parsed for field ``name`` (a bool for lesion_found, else the enum's string value).

    Raises ``ValueError`` naming the allowed values when it does not fit the field.
    """
    if name == "lesion_found":
        if isinstance(value, bool) or value is None:
            return value
        text = str(value).strip().lower()
        if text in {"true", "yes", "1"}:
            return True
        if text in {"false", "no", "0"}:
            return False
        raise ValueError(f"{value!r} is not valid for lesion_found; use true, false or null")
    if name not in FIELDS or name == "diagnosis":
        raise ValueError(
            f"{name!r} is not a finding field; use one of: " + ", ".join(FINDING_FIELDS)
        )
    member = normalise(FIELDS[name], value)
    return member.value if member is not None else None


_SHAPE_WORDS = {"round_oval": "round-to-oval", "lobulated": "lobulated", "irregular": "irregular"}
_LATERALITY_WORDS = {
    "left": "on the patient's left",
    "right": "on the patient's right",
    "midline": "at the midline",
    "bilateral": "in both hemispheres",
}


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def describe_findings(values: Mapping[str, Any]) -> str:
    """A plain-English sentence or two stating the given findings (no value beyond them)."""
    v = {name: _text(values.get(name)) for name in ("modality", *LESION_FIELDS)}
    if values.get("lesion_found") is False:
        return "No lesion on this slice."
    if not any(v[name] for name in LESION_FIELDS):
        if values.get("lesion_found"):
            return "A lesion is present; its features are not assessed."
        return "Whether there is a lesion cannot be assessed."
    words = [
        v["size"],
        _SHAPE_WORDS.get(v["shape"] or ""),
        v["spread"] == "solitary" and "solitary",
    ]
    first = " ".join([*(w for w in words if w), "lesion"])
    first = ("An " if first[0] in "aeiou" else "A ") + first
    if v["spread"] == "dominant_with_satellites":
        first += " with satellite foci"
    elif v["spread"] == "multifocal":
        first = first.replace(" lesion", " multifocal lesion", 1)
    if v["location"]:
        first += f" in the {v['location'].replace('_', ' ')} of the image"
    if v["laterality"]:
        first += f", {_LATERALITY_WORDS[v['laterality']]}"
    qualities = []
    if v["signal_intensity"]:
        on = f" on {v['modality']}" if v["modality"] else ""
        qualities.append(f"{v['signal_intensity']}{on}")
    if v["texture"]:
        qualities.append(v["texture"])
    features = []
    if v["margins"]:
        features.append(f"{v['margins'].replace('_', '-')} margins")
    if v["enhancement"]:
        features.append(f"{v['enhancement']} enhancement".replace("none enh", "no enh"))
    if v["edema"]:
        features.append(f"{v['edema']} perilesional edema".replace("none per", "no per"))
    if qualities and features:
        return f"{first}. It is {' and '.join(qualities)}, with {_join(features)}."
    if qualities:
        return f"{first}. It is {' and '.join(qualities)}."
    if features:
        return f"{first}. It has {_join(features)}."
    return first + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
