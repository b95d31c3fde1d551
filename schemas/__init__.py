"""Pydantic models and the controlled vocabulary of NeuroOnco. No I/O lives here."""

from neuroonco.schemas.agents import (
    FINDINGS_KEYS,
    Consensus,
    Critique,
    DiagnosisOpinion,
    FieldVerdict,
)
from neuroonco.schemas.findings import (
    FINDING_FIELDS,
    LESION_FIELDS,
    MASK_FIELDS,
    SliceFindings,
)
from neuroonco.schemas.vocabulary import (
    Diagnosis,
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
    normalise_label,
)

__all__ = [
    "FINDINGS_KEYS",
    "FINDING_FIELDS",
    "LESION_FIELDS",
    "MASK_FIELDS",
    "Consensus",
    "Critique",
    "Diagnosis",
    "DiagnosisOpinion",
    "Edema",
    "Enhancement",
    "FieldVerdict",
    "Laterality",
    "Location",
    "Margins",
    "Modality",
    "Shape",
    "SignalIntensity",
    "Size",
    "SliceFindings",
    "Spread",
    "Texture",
    "normalise",
    "normalise_label",
]
