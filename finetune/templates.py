"""Question templates and the answer texts built from findings and measurements.

Several stems per task, so a model cannot learn one wording. No stem names a value of the field it
asks about (the leakage test holds every stem against every answer and keyword). Answers only
state what the consensus and the measurements hold: a missing measurement is left out, never
guessed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from neuroonco.finetune.names import display_name
from neuroonco.schemas.findings import LESION_FIELDS

CLOSED_STEMS: dict[str, tuple[str, ...]] = {
    "diagnosis": (
        "What is the most likely diagnosis?",
        "Which diagnosis best fits the lesion on this slice?",
        "Based on this image, what is the most probable tumour type?",
    ),
    "diagnosis_binary": (
        "What is the overall assessment of this brain MRI slice?",
        "How would you classify this brain MRI slice?",
        "Which option best describes this scan?",
    ),
    "modality": (
        "What imaging sequence is shown?",
        "Which MRI sequence was used to acquire this slice?",
        "What is the MRI sequence of this image?",
    ),
    "size": (
        "How big is the lesion relative to the image?",
        "What is the size of the lesion on this slice?",
        "How much of the image area does the lesion occupy?",
    ),
    "shape": (
        "Which term best describes the lesion's shape?",
        "What is the outline of the lesion?",
        "How would you describe the lesion's morphology?",
    ),
    "spread": (
        "How does the lesion spread on this slice?",
        "How many foci does the abnormality form, and how are they arranged?",
        "Which pattern of distribution does the lesion show?",
    ),
    "location": (
        "In which region of the image is the lesion?",
        "Where does the lesion's centroid fall in a 3x3 grid over the image?",
        "Which part of the image holds the lesion?",
    ),
    "laterality": (
        "On which side of the patient's brain is the lesion?",
        "Which hemisphere does the lesion involve?",
        "What is the laterality of the lesion?",
    ),
    "margins": (
        "How would you describe the lesion's margins?",
        "What do the borders of the lesion look like?",
        "How sharply is the lesion demarcated from the surrounding brain?",
    ),
    "texture": (
        "What is the internal texture of the lesion?",
        "How uniform is the signal inside the lesion?",
        "Which term describes the lesion's internal signal pattern?",
    ),
    "enhancement": (
        "What pattern of contrast enhancement does the lesion show?",
        "How does the lesion take up contrast?",
        "Which enhancement pattern is seen?",
    ),
    "edema": (
        "How much edema surrounds the lesion?",
        "What is the extent of perilesional edema?",
        "How would you grade the surrounding edema?",
    ),
    "signal_intensity": (
        "What is the lesion's signal relative to normal white matter?",
        "How bright is the lesion compared with normal brain on this sequence?",
        "Which term describes the lesion's signal intensity?",
    ),
}

OPEN_STEMS: dict[str, tuple[str, ...]] = {
    "report": (
        "Describe the findings on this MRI slice.",
        "Write a short radiology report for this image.",
        "What does this brain MRI slice show? Report what you see.",
    ),
    "location": (
        "Where is the abnormality on this slice, and on which side of the patient?",
        "Locate the lesion on this image and state the side of the brain it involves.",
        "Describe the position of the lesion in the image.",
    ),
    "reasoning": (
        "Why is this most likely a {diagnosis}?",
        "Which findings on this slice support the diagnosis of {diagnosis}?",
        "Explain how the imaging features point to {diagnosis}.",
    ),
}

LETTER_PROMPT = "Answer with the option's letter only."
COT_PROMPT = "Give your answer as 'Final: <letter>', then explain it from the image."

# The words a scorer looks for when a finding is stated (each appears verbatim in the answers).
_KEYWORD_OVERRIDES = {
    ("shape", "round_oval"): "round",
    ("spread", "dominant_with_satellites"): "satellite",
    ("margins", "well_circumscribed"): "well-circumscribed",
    ("margins", "ill_defined"): "ill-defined",
    ("signal_intensity", "mixed"): "mixed signal",
    ("enhancement", "none"): "no enhancement",
    ("edema", "none"): "no edema",
}

# What a finding reads as in a sentence (each contains its keyword).
_PHRASES = {
    ("shape", "round_oval"): "round-to-oval",
    ("spread", "solitary"): "solitary",
    ("spread", "dominant_with_satellites"): "dominant lesion with satellite foci",
    ("spread", "multifocal"): "multifocal",
    ("enhancement", "solid"): "solid enhancement",
    ("enhancement", "ring"): "ring enhancement",
    ("enhancement", "patchy"): "patchy enhancement",
    ("edema", "mild"): "mild edema",
    ("edema", "extensive"): "extensive edema",
}

# Typical features per diagnosis, for the reasoning answers (textbook, not patient facts).
DIAGNOSIS_CUES = {
    "glioma": "an intra-axial mass with infiltrative growth is typical of a glial tumour",
    "meningioma": "a sharply marginated, extra-axial, dural-based mass is typical of meningioma",
    "pituitary_tumor": "a sellar or suprasellar mass is typical of a pituitary tumour",
    "metastasis": "lesions at the grey-white junction with surrounding edema suggest metastasis",
    "schwannoma": "a well-defined extra-axial mass along a cranial nerve suggests schwannoma",
    "ependymoma": "a mass near the ventricular system suggests ependymoma",
    "embryonal_tumor": "a cellular, often posterior-fossa mass suggests an embryonal tumour",
    "neuronal_tumor": "a cortically based, well-demarcated lesion suggests a neuronal tumour",
}


def keyword(field: str, value: str) -> str:
    """The word(s) standing for ``value`` of ``field`` in answers and keywords (lower case)."""
    return _KEYWORD_OVERRIDES.get((field, value), value.replace("_", " "))


def phrase(field: str, value: str) -> str:
    return _PHRASES.get((field, value), keyword(field, value))


@lru_cache(maxsize=256)
def diagnosis_words(diagnosis: str) -> str:
    """A diagnosis as it reads inside a sentence ("pituitary tumor")."""
    shown = display_name("diagnosis", diagnosis)
    return shown if shown.isupper() or " CNS" in shown else shown.lower()


def _intensity(measurements: dict[str, Any], modality: str | None) -> dict[str, Any]:
    by_sequence = measurements.get("intensity") or {}
    return by_sequence.get(modality or "", {}) if isinstance(by_sequence, dict) else {}


def _num(value: Any) -> float | None:
    if value.__class__ is float:  # the usual case, checked first: this runs per question
        return value
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def evidence(field: str, value: str, findings: dict, measurements: dict) -> str:
    """One sentence citing the measurement behind ``value`` of ``field`` (or the finding alone)."""
    cite = _CITES.get(field)
    if cite is not None:
        said = cite(value, findings, measurements)
        if said is not None:
            return said
    return _unmeasured_evidence(field, value)


def _size(value: str, findings: dict, m: dict) -> str | None:
    if (af := _num(m.get("area_fraction"))) is None:
        return None
    return (
        f"The lesion covers {af:.1%} of the image area, so it is {keyword('size', value)} "
        "(small below 1%, medium below 5%, large from 5%)."
    )


def _shape(value: str, findings: dict, m: dict) -> str | None:
    if (circ := _num(m.get("circularity"))) is None:
        return None
    el = _num(m.get("elongation"))
    elong = f" and elongation {el:.2f}" if el is not None else ""
    outline = phrase("shape", value)
    return f"Its largest component has circularity {circ:.2f}{elong}, a {outline} outline."


def _spread(value: str, findings: dict, m: dict) -> str | None:
    if (n := _num(m.get("components"))) is None:
        return None
    ratio = _num(m.get("largest_component_ratio"))
    share = f", the largest holding {ratio:.0%} of the lesion area" if ratio is not None else ""
    return f"The lesion forms {int(n)} component(s){share}: {phrase('spread', value)}."


def _location(value: str, findings: dict, m: dict) -> str | None:
    centroid = m.get("centroid")
    if not isinstance(centroid, list | tuple):
        return None
    x, y = centroid[:2]
    return (
        f"Its centroid lies at x={x:.2f}, y={y:.2f} of the image width and height, in the "
        f"{keyword('location', value)} cell of a 3x3 grid."
    )


def _signal(value: str, findings: dict, m: dict) -> str | None:
    ratio = _num(_intensity(m, findings.get("modality")).get("contrast_ratio"))
    if ratio is None:
        return None
    return (
        f"The lesion's mean signal is {ratio:.2f} times that of normal tissue on this "
        f"sequence: {keyword('signal_intensity', value)}."
    )


def _texture(value: str, findings: dict, m: dict) -> str | None:
    if (cv := _num(_intensity(m, findings.get("modality")).get("cv"))) is None:
        return None
    return f"The lesion signal varies with a coefficient of variation of {cv:.2f}: {value}."


def _margins(value: str, findings: dict, m: dict) -> str | None:
    edge = _num(_intensity(m, findings.get("modality")).get("edge_sharpness"))
    if edge is None:
        return None
    word = keyword("margins", value)
    return f"The edge sharpness at the lesion border is {edge:.2f}: {word} margins."


_CITES = {
    "size": _size,
    "shape": _shape,
    "spread": _spread,
    "location": _location,
    "signal_intensity": _signal,
    "texture": _texture,
    "margins": _margins,
}
# The fields whose evidence sentence cites the measurements; every other field's depends on its
# value alone (instruction generation caches those).
EVIDENCE_FROM_MEASUREMENTS = frozenset(_CITES)


@lru_cache(maxsize=1024)
def _unmeasured_evidence(field: str, value: str) -> str:
    if field == "laterality":
        return f"The lesion lies {side_phrase(value)} (images in radiological convention)."
    if field == "modality":
        return f"The image is a {display_name(field, value)} slice."
    return f"The lesion shows {phrase(field, value)}."


def finding_sentence(findings: dict) -> str:
    """The lesion findings in one sentence (each finding's keyword verbatim)."""
    return lesion_sentence(tuple(findings.get(k) or None for k in LESION_FIELDS))


# The sentence and the keywords fall into three parts, each a function of a few fields: what the
# lesion is (size, shape, spread), where (location, laterality) and how it looks (the rest). The
# parts have at most a few hundred combinations, so each is made once, while whole findings have
# about a million (a cache of those would miss on nearly every slice).
_WHAT, _WHERE, _LOOK = slice(0, 3), slice(3, 5), slice(5, 10)


def lesion_sentence(key: tuple) -> str:
    """:func:`finding_sentence` of the findings whose LESION_FIELDS values ``key`` holds."""
    return _what_part(key[_WHAT]) + _where_part(key[_WHERE]) + _look_part(key[_LOOK])


def lesion_keywords(key: tuple) -> tuple[str, ...]:
    """The keywords of the stated findings, in LESION_FIELDS order (``key`` as above)."""
    return (
        _keywords_part(_WHAT.start, key[_WHAT])
        + _keywords_part(_WHERE.start, key[_WHERE])
        + _keywords_part(_LOOK.start, key[_LOOK])
    )


@lru_cache(maxsize=256)
def _what_part(key: tuple) -> str:
    size, shape, spread = key
    head = " ".join(phrase(k, v) for k, v in (("size", size), ("shape", shape)) if v)
    body = f"a {head + ' ' if head else ''}lesion"
    return body + f" ({phrase('spread', spread)})" if spread else body


@lru_cache(maxsize=256)
def _where_part(key: tuple) -> str:
    location, laterality = key
    body = f" in the {keyword('location', location)} of the image" if location else ""
    return body + ", " + side_phrase(laterality) if laterality else body


@lru_cache(maxsize=4096)
def _look_part(key: tuple) -> str:
    f = dict(zip(LESION_FIELDS[_LOOK], key, strict=True))
    qualities = [phrase(k, f[k]) for k in ("signal_intensity", "texture") if f.get(k)]
    features = [f"{keyword('margins', f['margins'])} margins"] if f.get("margins") else []
    features += [phrase(k, f[k]) for k in ("enhancement", "edema") if f.get(k)]
    body = "; it is " + _join(qualities) if qualities else ""
    if features:
        body += (", with " if qualities else "; it has ") + _join(features)
    return body


@lru_cache(maxsize=4096)
def _keywords_part(start: int, key: tuple) -> tuple[str, ...]:
    """The keywords of one part (``key``: the values of LESION_FIELDS from ``start`` on)."""
    fields = LESION_FIELDS[start : start + len(key)]
    return tuple(keyword(k, v) for k, v in zip(fields, key, strict=True) if v)


def side_phrase(laterality: str) -> str:
    """The patient's side in words (contains the laterality keyword)."""
    return {
        "midline": "at the midline",
        "bilateral": "bilateral, in both hemispheres",
    }.get(laterality, f"on the patient's {keyword('laterality', laterality)} side")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
