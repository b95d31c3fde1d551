"""Pydantic models and the controlled vocabulary of NeuroOnco. No I/O lives here."""

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
    "Diagnosis",
    "Edema",
    "Enhancement",
    "Laterality",
    "Location",
    "Margins",
    "Modality",
    "Shape",
    "SignalIntensity",
    "Size",
    "Spread",
    "Texture",
    "normalise",
    "normalise_label",
]
