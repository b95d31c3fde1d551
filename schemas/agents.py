"""What the diagnostician, the critic and the arbiter say: :class:`DiagnosisOpinion`,
:class:`Critique` and :class:`Consensus`.

As in :mod:`neuroonco.schemas.findings`, descriptions are written for the model and validator
messages say what to change. :meth:`Consensus.findings_json` is exactly the JSON stored in
``annotations.findings`` (DESIGN.md, Store).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

from neuroonco.schemas.findings import FINDING_FIELDS, LESION_FIELDS, FindingValues, finding_value
from neuroonco.schemas.vocabulary import Diagnosis, normalise

Action = Literal["keep", "erase", "downgrade"]
Status = Literal["accepted", "needs_review", "rejected"]
_FIELD_LIST = ", ".join(FINDING_FIELDS)
# The keys of annotations.findings, in order: the vocabulary fields, lesion_found, rationale.
FINDINGS_KEYS: tuple[str, ...] = (
    "modality",
    "diagnosis",
    *LESION_FIELDS,
    "lesion_found",
    "rationale",
)


class DiagnosisOpinion(BaseModel):
    """The diagnostician's opinion on one slice, weighed against the source's label."""

    diagnosis: Diagnosis | None = Field(
        default=None,
        description="Most likely diagnosis: glioma, meningioma, pituitary_tumor, metastasis, "
        "schwannoma, ependymoma, embryonal_tumor, neuronal_tumor, tumor (a tumour of unspecified "
        "type), no_tumor. null when it cannot be assessed.",
    )
    reasoning: str = Field(
        description="The findings that support the diagnosis, in two to four sentences."
    )
    differential: list[Diagnosis] = Field(
        default_factory=list,
        description="Other diagnoses worth considering, most likely first; may be empty.",
    )
    confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Confidence in the diagnosis, from 0 to 1."
    )
    conflicts_with_source: bool = Field(
        default=False,
        description="true when the findings contradict the source's label (e.g. the label says "
        "no_tumor but a lesion is visible, or a tumour label on a slice without a lesion).",
    )
    conflict_note: str | None = Field(
        default=None, description="What the conflict is; required when conflicts_with_source."
    )

    @field_validator("diagnosis", mode="before")
    @classmethod
    def _normalise_diagnosis(cls, value: object) -> object:
        return normalise(Diagnosis, value)

    @field_validator("differential", mode="before")
    @classmethod
    def _normalise_differential(cls, value: object) -> object:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        found = [normalise(Diagnosis, item) for item in value]
        return list(dict.fromkeys(d for d in found if d is not None))

    @model_validator(mode="after")
    def _check_conflict(self) -> DiagnosisOpinion:
        if self.conflicts_with_source and not (self.conflict_note or "").strip():
            raise ValueError(
                "conflicts_with_source is true: say what the conflict is in conflict_note"
            )
        return self


class FieldVerdict(BaseModel):
    """The critic's ruling on one claimed value."""

    action: Action = Field(
        description="keep (the evidence supports the value or cannot refute it), erase (set it to "
        "null: the evidence rules it out), downgrade (replace it by `value`, what the evidence "
        "supports)."
    )
    reason: str = Field(description="The evidence, quoting measured numbers where there are any.")
    value: str | None = Field(
        default=None, description="The replacement value; only for downgrade, null otherwise."
    )

    @field_validator("value", mode="before")
    @classmethod
    def _value_as_text(cls, value: object) -> object:
        # Models often answer a boolean for lesion_found; keep every value as text.
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    @model_validator(mode="after")
    def _check_value(self) -> FieldVerdict:
        if self.action == "downgrade" and self.value is None:
            raise ValueError("a downgrade needs the replacement in value; or use erase")
        if self.action != "downgrade":
            self.value = None
        return self


def _verdict_field(name: str) -> Any:
    return Field(default=None, description=f"The verdict on {name}; null when it was not claimed.")


class Verdicts(BaseModel):
    """One optional verdict per finding field: a closed object, so strict structured-output modes
    (which cannot express an open dict) can ask for it."""

    lesion_found: FieldVerdict | None = _verdict_field("lesion_found")
    modality: FieldVerdict | None = _verdict_field("modality")
    size: FieldVerdict | None = _verdict_field("size")
    shape: FieldVerdict | None = _verdict_field("shape")
    spread: FieldVerdict | None = _verdict_field("spread")
    location: FieldVerdict | None = _verdict_field("location")
    laterality: FieldVerdict | None = _verdict_field("laterality")
    margins: FieldVerdict | None = _verdict_field("margins")
    texture: FieldVerdict | None = _verdict_field("texture")
    enhancement: FieldVerdict | None = _verdict_field("enhancement")
    edema: FieldVerdict | None = _verdict_field("edema")
    signal_intensity: FieldVerdict | None = _verdict_field("signal_intensity")

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        checked: dict[str, Any] = {}
        for key, verdict in data.items():
            name = str(key).strip().lower().replace(" ", "_")
            if name not in FINDING_FIELDS:
                raise ValueError(
                    f"{key!r} is not a finding field; verdict keys must be among: {_FIELD_LIST}"
                )
            checked[name] = verdict
        return checked

    @model_validator(mode="after")
    def _check_values(self) -> Verdicts:
        for name, verdict in self.items():
            if verdict.value is not None:
                parsed = finding_value(name, verdict.value)
                if parsed is None:
                    raise ValueError(f"downgrade of {name} needs a value; or use erase")
                verdict.value = str(parsed).lower()
        return self

    def items(self) -> list[tuple[str, FieldVerdict]]:
        """(field, verdict) for every field that has a verdict, in FINDING_FIELDS order."""
        return [(n, v) for n in FINDING_FIELDS if (v := getattr(self, n)) is not None]

    def values(self) -> list[FieldVerdict]:
        return [v for _, v in self.items()]

    def get(self, name: str) -> FieldVerdict | None:
        return getattr(self, name, None) if name in FINDING_FIELDS else None

    def __getitem__(self, name: str) -> FieldVerdict:
        verdict = self.get(name)
        if verdict is None:
            raise KeyError(name)
        return verdict

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self.items())

    def as_dict(self) -> dict[str, FieldVerdict]:
        return dict(self.items())


class Critique(BaseModel):
    """The critic's rulings on a describer's findings, one per claimed field."""

    verdicts: Verdicts = Field(
        default_factory=Verdicts,
        description=f"One verdict per claimed field (keys among: {_FIELD_LIST}); leave the "
        "others null.",
    )
    revise: bool = Field(default=False, description="true when any verdict is erase or downgrade.")
    summary: str = Field(default="", description="One sentence on what was wrong, if anything.")

    @field_validator("verdicts", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    @field_serializer("verdicts")
    def _dump_verdicts(self, verdicts: Verdicts) -> dict[str, Any]:
        # Stored and rendered as {field: verdict} for the claimed fields only.
        return {name: verdict.model_dump() for name, verdict in verdicts.items()}

    @model_validator(mode="after")
    def _derive_revise(self) -> Critique:
        # revise follows from the verdicts; a model that forgets to set it is not re-asked.
        self.revise = any(v.action != "keep" for v in self.verdicts.values())
        return self


class Consensus(FindingValues):
    """The arbiter's fused findings for one slice, with per-field agreement and a status."""

    diagnosis: Diagnosis | None = Field(
        default=None, description="The diagnosis retained for the slice; null when unknown."
    )
    agreement: dict[str, float] = Field(
        default_factory=dict,
        description="Field name -> share of describer votes equal to the fused value (0..1).",
    )
    overall_agreement: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Mean agreement over fields anyone voted on."
    )
    status: Status = Field(
        default="needs_review",
        description="accepted, needs_review (low agreement or a conflict with the source label), "
        "rejected (no valid vote).",
    )

    @field_validator("diagnosis", mode="before")
    @classmethod
    def _normalise_diagnosis(cls, value: object) -> object:
        return normalise(Diagnosis, value)

    @field_validator("agreement", mode="after")
    @classmethod
    def _check_agreement(cls, agreement: dict[str, float]) -> dict[str, float]:
        for key, share in agreement.items():
            if key not in FINDING_FIELDS:
                raise ValueError(
                    f"agreement key {key!r} is not a finding field; use: {_FIELD_LIST}"
                )
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"agreement for {key} is {share}; it must lie in 0..1")
        return agreement

    def findings_json(self) -> dict[str, Any]:
        """The ``annotations.findings`` dict: vocabulary fields, lesion_found, rationale.

        Enum members are plain strings and null values are kept, so every key is always present.
        """
        data = self.model_dump(mode="json", include=set(FINDINGS_KEYS))
        return {key: data[key] for key in FINDINGS_KEYS}
