"""The controlled vocabulary (DESIGN.md, contract): one snake_case enum per categorical field.

Values met in the wild ("T1 with contrast", "Solitary Lesion", "Ring-enhancing", "notumor") are
mapped onto members by :func:`normalise`, which every reader and every model output goes through.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar


class Modality(StrEnum):
    t1 = "t1"
    t1ce = "t1ce"
    t2 = "t2"
    flair = "flair"


class Diagnosis(StrEnum):
    glioma = "glioma"
    meningioma = "meningioma"
    pituitary_tumor = "pituitary_tumor"
    metastasis = "metastasis"
    schwannoma = "schwannoma"
    ependymoma = "ependymoma"
    embryonal_tumor = "embryonal_tumor"
    neuronal_tumor = "neuronal_tumor"
    tumor = "tumor"
    no_tumor = "no_tumor"


class Size(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


class Shape(StrEnum):
    round_oval = "round_oval"
    lobulated = "lobulated"
    irregular = "irregular"


class Spread(StrEnum):
    solitary = "solitary"
    dominant_with_satellites = "dominant_with_satellites"
    multifocal = "multifocal"


class Location(StrEnum):
    upper_left = "upper_left"
    upper_center = "upper_center"
    upper_right = "upper_right"
    center_left = "center_left"
    center = "center"
    center_right = "center_right"
    lower_left = "lower_left"
    lower_center = "lower_center"
    lower_right = "lower_right"


class Laterality(StrEnum):
    left = "left"
    right = "right"
    midline = "midline"
    bilateral = "bilateral"


class Margins(StrEnum):
    well_circumscribed = "well_circumscribed"
    ill_defined = "ill_defined"


class Texture(StrEnum):
    homogeneous = "homogeneous"
    heterogeneous = "heterogeneous"


class Enhancement(StrEnum):
    none = "none"
    solid = "solid"
    ring = "ring"
    patchy = "patchy"


class Edema(StrEnum):
    none = "none"
    mild = "mild"
    extensive = "extensive"


class SignalIntensity(StrEnum):
    hyperintense = "hyperintense"
    hypointense = "hypointense"
    isointense = "isointense"
    mixed = "mixed"


# Field name (as used in findings and instructions) -> enum.
FIELDS: dict[str, type[StrEnum]] = {
    "modality": Modality,
    "diagnosis": Diagnosis,
    "size": Size,
    "shape": Shape,
    "spread": Spread,
    "location": Location,
    "laterality": Laterality,
    "margins": Margins,
    "texture": Texture,
    "enhancement": Enhancement,
    "edema": Edema,
    "signal_intensity": SignalIntensity,
}

# Synonyms per enum, keyed by the squashed form (lower case, only [a-z0-9]) of the wild value.
_SYNONYMS: dict[type[StrEnum], dict[str, str]] = {
    Modality: {
        "t1": "t1",
        "t1w": "t1",
        "t1n": "t1",
        "t1native": "t1",
        "t1weighted": "t1",
        "t1precontrast": "t1",
        "t1pre": "t1",
        "t1noncontrast": "t1",
        "t1ce": "t1ce",
        "t1c": "t1ce",
        "t1gd": "t1ce",
        "t1contrast": "t1ce",
        "t1withcontrast": "t1ce",
        "t1postcontrast": "t1ce",
        "t1post": "t1ce",
        "t1wce": "t1ce",
        "t1cewithcontrast": "t1ce",
        "t1gadolinium": "t1ce",
        "t1contrastenhanced": "t1ce",
        "contrastenhancedt1": "t1ce",
        "cet1": "t1ce",
        "postcontrastt1": "t1ce",
        "t1weightedpostcontrast": "t1ce",
        "t1wc": "t1ce",
        "t1weightedwithcontrast": "t1ce",
        "t2": "t2",
        "t2w": "t2",
        "t2weighted": "t2",
        "flair": "flair",
        "t2flair": "flair",
        "t2f": "flair",
        "t2wflair": "flair",
    },
    Diagnosis: {
        "glioma": "glioma",
        "gliomatumor": "glioma",
        "gliomatumour": "glioma",
        "gli": "glioma",
        "glioblastoma": "glioma",
        "gbm": "glioma",
        "astrocytoma": "glioma",
        "lgg": "glioma",
        "hgg": "glioma",
        "oligodendroglioma": "glioma",
        "meningioma": "meningioma",
        "meningiomatumor": "meningioma",
        "meningiomatumour": "meningioma",
        "men": "meningioma",
        "pituitary": "pituitary_tumor",
        "pituitarytumor": "pituitary_tumor",
        "pituitarytumour": "pituitary_tumor",
        "pituitaryadenoma": "pituitary_tumor",
        "metastasis": "metastasis",
        "metastases": "metastasis",
        "met": "metastasis",
        "brainmetastasis": "metastasis",
        "metastatic": "metastasis",
        "schwannoma": "schwannoma",
        "vestibularschwannoma": "schwannoma",
        "acousticneuroma": "schwannoma",
        "ependymoma": "ependymoma",
        "embryonaltumor": "embryonal_tumor",
        "embryonaltumour": "embryonal_tumor",
        "medulloblastoma": "embryonal_tumor",
        "embryonal": "embryonal_tumor",
        "neuronaltumor": "neuronal_tumor",
        "neuronaltumour": "neuronal_tumor",
        "tumor": "tumor",
        "tumour": "tumor",
        "yes": "tumor",
        "braintumor": "tumor",
        "braintumour": "tumor",
        "tumorous": "tumor",
        "abnormal": "tumor",
        "notumor": "no_tumor",
        "notumour": "no_tumor",
        "no": "no_tumor",
        "healthy": "no_tumor",
        "normal": "no_tumor",
        "none": "no_tumor",
        "negative": "no_tumor",
    },
    Size: {
        "smallfocal": "small",
        "largeextensive": "large",
    },
    Shape: {
        "irregularspiculated": "irregular",
        "round": "round_oval",
        "oval": "round_oval",
        "roundoval": "round_oval",
        "rounded": "round_oval",
        "ovoid": "round_oval",
        "spherical": "round_oval",
        "lobulated": "lobulated",
        "lobular": "lobulated",
        "multilobulated": "lobulated",
        "irregular": "irregular",
        "irregularlyshaped": "irregular",
        "infiltrative": "irregular",
    },
    Spread: {
        "solitary": "solitary",
        "solitarylesion": "solitary",
        "single": "solitary",
        "singlelesion": "solitary",
        "unifocal": "solitary",
        "dominantwithsatellites": "dominant_with_satellites",
        "dominantcorewithsatellites": "dominant_with_satellites",
        "scatteredmultifocal": "multifocal",
        "dominantwithsatellitelesions": "dominant_with_satellites",
        "satellite": "dominant_with_satellites",
        "satellites": "dominant_with_satellites",
        "multifocal": "multifocal",
        "multiple": "multifocal",
        "multiplelesions": "multifocal",
    },
    Margins: {
        "wellcircumscribed": "well_circumscribed",
        "welldefined": "well_circumscribed",
        "circumscribed": "well_circumscribed",
        "sharp": "well_circumscribed",
        "illdefined": "ill_defined",
        "poorlydefined": "ill_defined",
        "infiltrative": "ill_defined",
        "indistinct": "ill_defined",
        "blurred": "ill_defined",
    },
    Texture: {
        "homogeneous": "homogeneous",
        "homogenous": "homogeneous",
        "uniform": "homogeneous",
        "heterogeneous": "heterogeneous",
        "heterogenous": "heterogeneous",
        "nonuniform": "heterogeneous",
    },
    Enhancement: {
        "none": "none",
        "noenhancement": "none",
        "nonenhancing": "none",
        "absent": "none",
        "solid": "solid",
        "solidenhancement": "solid",
        "homogeneousenhancement": "solid",
        "ring": "ring",
        "ringenhancing": "ring",
        "ringenhancement": "ring",
        "rim": "ring",
        "rimenhancing": "ring",
        "peripheral": "ring",
        "patchy": "patchy",
        "patchyenhancement": "patchy",
        "heterogeneousenhancement": "patchy",
    },
    Edema: {
        "none": "none",
        "noedema": "none",
        "absent": "none",
        "mild": "mild",
        "minimal": "mild",
        "moderate": "mild",
        "slight": "mild",
        "extensive": "extensive",
        "severe": "extensive",
        "marked": "extensive",
        "significant": "extensive",
    },
    SignalIntensity: {
        "hyperintense": "hyperintense",
        "hyper": "hyperintense",
        "bright": "hyperintense",
        "high": "hyperintense",
        "highsignal": "hyperintense",
        "hypointense": "hypointense",
        "hypo": "hypointense",
        "dark": "hypointense",
        "low": "hypointense",
        "lowsignal": "hypointense",
        "isointense": "isointense",
        "iso": "isointense",
        "mixed": "mixed",
        "heterogeneous": "mixed",
        "mixedsignal": "mixed",
    },
    Laterality: {
        "left": "left",
        "lefthemisphere": "left",
        "leftsided": "left",
        "right": "right",
        "righthemisphere": "right",
        "rightsided": "right",
        "midline": "midline",
        "central": "midline",
        "median": "midline",
        "bilateral": "bilateral",
        "both": "bilateral",
    },
    Location: {
        "centre": "center",
        "middle": "center",
        "central": "center",
    },
}

# Words that carry no value in a phrase ("T2-weighted MRI", "Upper-Left Region", "Center of the
# image"); dropped for the second lookup only, so a synonym key always wins over a stripped phrase.
_FILLER = re.compile(
    r"\b(lesion|lesions|tumou?r|the|a|an|is|of|region|image|mri|weighted|brain|sequence|scan)\b"
)


_MISSING = {"null", "unknown", "na", "nan", "cannotassess", "notassessable"}


def _squash(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


E = TypeVar("E", bound=StrEnum)


def normalise(enum: type[E], value: object) -> E | None:
    """Map a wild value onto a member of ``enum``; ``None``/empty/"unknown" give ``None``.

    Raises ``ValueError`` naming the allowed values when the value cannot be mapped, so the
    message can serve as an instructor re-ask prompt.
    """
    if value is None:
        return None
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        member = enum._value2member_map_.get(value)  # the common case: a vocabulary value
        if member is not None:
            return member  # type: ignore[return-value]
    return _normalise_text(enum, str(value))


@lru_cache(maxsize=4096)
def _normalise_text(enum: type[E], value: str) -> E | None:
    """The synonym search of :func:`normalise`, cached: models repeat the same phrasings."""
    text = value.strip()
    if not text or _squash(text) in _MISSING:
        return None
    key = _squash(text.replace("-", "_"))
    candidates = [key, _squash(_FILLER.sub(" ", re.sub(r"[_/-]", " ", text.lower())))]
    synonyms = _SYNONYMS.get(enum, {})
    for candidate in candidates:
        for member in enum:
            if _squash(member.value) == candidate:
                return member
        if candidate in synonyms:
            return enum(synonyms[candidate])
    allowed = ", ".join(m.value for m in enum)
    raise ValueError(f"{value!r} is not a valid {enum.__name__.lower()}; use one of: {allowed}")


def normalise_label(value: object) -> Diagnosis | None:
    """A source's class label as a :class:`Diagnosis`, or ``None`` when it says nothing usable."""
    try:
        return normalise(Diagnosis, value)
    except ValueError:
        return None


# --- Display names and MM-NeuroOnco's spellings -------------------------------------------------

# The one text each value is shown as, in the instruction set and in our benchmark's options. One
# display name per value, so a question never offers two spellings of one concept; each display
# name normalises back to its value (a test holds this).
_DISPLAY: dict[type[StrEnum], dict[str, str]] = {
    Modality: {
        "t1": "T1-weighted",
        "t1ce": "T1-weighted post-contrast",
        "t2": "T2-weighted",
        "flair": "FLAIR",
    },
    Diagnosis: {
        "glioma": "Glioma",
        "meningioma": "Meningioma",
        "pituitary_tumor": "Pituitary tumor",
        "metastasis": "Metastasis",
        "schwannoma": "Schwannoma",
        "ependymoma": "Ependymoma",
        "embryonal_tumor": "Embryonal tumor",
        "neuronal_tumor": "Neuronal tumor",
        "tumor": "Tumor, type unspecified",
        "no_tumor": "No tumor",
    },
    Size: {"small": "Small", "medium": "Medium", "large": "Large"},
    Shape: {"round_oval": "Round or oval", "lobulated": "Lobulated", "irregular": "Irregular"},
    Spread: {
        "solitary": "Solitary lesion",
        "dominant_with_satellites": "Dominant lesion with satellites",
        "multifocal": "Multifocal lesions",
    },
    Location: {
        "upper_left": "Upper-left region of the image",
        "upper_center": "Upper-center region of the image",
        "upper_right": "Upper-right region of the image",
        "center_left": "Center-left region of the image",
        "center": "Center of the image",
        "center_right": "Center-right region of the image",
        "lower_left": "Lower-left region of the image",
        "lower_center": "Lower-center region of the image",
        "lower_right": "Lower-right region of the image",
    },
    Laterality: {
        "left": "Left hemisphere",
        "right": "Right hemisphere",
        "midline": "Midline",
        "bilateral": "Bilateral",
    },
    Margins: {"well_circumscribed": "Well-circumscribed", "ill_defined": "Ill-defined"},
    Texture: {"homogeneous": "Homogeneous", "heterogeneous": "Heterogeneous"},
    Enhancement: {
        "none": "No enhancement",
        "solid": "Solid enhancement",
        "ring": "Ring enhancement",
        "patchy": "Patchy enhancement",
    },
    Edema: {"none": "No edema", "mild": "Mild edema", "extensive": "Extensive edema"},
    SignalIntensity: {
        "hyperintense": "Hyperintense",
        "hypointense": "Hypointense",
        "isointense": "Isointense",
        "mixed": "Mixed signal",
    },
}

# MM-NeuroOnco's own spelling of each value: the text its closed benchmark file
# (mm-neuroonco_benchmark_closed_v1.0.json) uses most as the answer for that value (trap originals
# included), or most as an option for a value it never answers (upper_left). A test recomputes
# this from the file. Fields the seed's files never ask about (laterality,
# margins, texture, enhancement, edema, signal intensity) have no seed spelling of their own and
# use the display name.
_SEED: dict[type[StrEnum], dict[str, str]] = {
    Modality: {"t1": "T1", "t1ce": "T1-weighted with contrast", "t2": "T2", "flair": "FLAIR"},
    Diagnosis: {
        "glioma": "glioma",
        "meningioma": "Meningioma",
        "pituitary_tumor": "pituitary",
        "metastasis": "metastasis",
        "schwannoma": "schwannoma",
        "ependymoma": "ependymoma",
        "embryonal_tumor": "embryonal",
        "neuronal_tumor": "neuronal_tumor",
        "tumor": "Abnormal",
        "no_tumor": "Healthy",
    },
    Size: {"small": "Small/Focal", "medium": "Medium", "large": "Large/Extensive"},
    Shape: {
        "round_oval": "Round/Oval",
        "lobulated": "Lobulated",
        "irregular": "Irregular/Spiculated",
    },
    Spread: {
        "solitary": "Solitary lesion",
        "dominant_with_satellites": "Dominant core with satellites",
        "multifocal": "Scattered/Multifocal",
    },
    Location: {
        "upper_left": "Upper-Left Region",
        "upper_center": "Upper-center region",
        "upper_right": "Upper-Right Region",
        "center_left": "Center-left region",
        "center": "Center of the image",
        "center_right": "Center-right region",
        "lower_left": "Lower-Left Region",
        "lower_center": "Lower-Center Region",
        "lower_right": "Lower-Right Region",
    },
}


def _register_names() -> None:
    """Make every display name and seed spelling a synonym of its value, refusing a clash."""
    for table in (_DISPLAY, _SEED):
        for enum, names in table.items():
            synonyms = _SYNONYMS.setdefault(enum, {})
            for value, name in names.items():
                key = _squash(name)
                if synonyms.setdefault(key, value) != value:
                    raise RuntimeError(f"{name!r} would mean both {synonyms[key]} and {value}")


_register_names()


def _field_enum(field: str) -> type[StrEnum]:
    enum = FIELDS.get(field)
    if enum is None:
        raise ValueError(f"{field!r} is not a vocabulary field; use one of: {', '.join(FIELDS)}")
    return enum


def _member_value(enum: type[StrEnum], field: str, value: object) -> str:
    member = normalise(enum, value)
    if member is None:
        raise ValueError(f"{value!r} is not a value of {field}")
    return member.value


def display_name(field: str, value: object) -> str:
    """The one text ``value`` of ``field`` is shown as ("t1ce" -> "T1-weighted post-contrast").

    ``value`` may be a member or any spelling :func:`normalise` accepts; raises ``ValueError`` for
    an unknown field or value.
    """
    enum = _field_enum(field)
    return _DISPLAY[enum][_member_value(enum, field, value)]


def seed_spelling(field: str, value: object) -> str:
    """MM-NeuroOnco's own spelling of ``value`` ("t1ce" -> "T1_CE", "small" -> "Small/Focal").

    Fields the seed never spells fall back to :func:`display_name`.
    """
    enum = _field_enum(field)
    member = _member_value(enum, field, value)
    return _SEED.get(enum, _DISPLAY[enum]).get(member, _DISPLAY[enum][member])
