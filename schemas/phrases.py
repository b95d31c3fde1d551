"""Word rules that read a free phrase ("Solitary, well-circumscribed mass", "Right side of the
image", "Large/Extensive") as vocabulary values of the mask-derived fields.

Used by :mod:`neuroonco.schemas.vocabulary` after the exact synonym tables. The rules are strict by
construction: every word of the phrase must be understood (a value word of the field, or a word
known to add nothing), and the value words must agree. One unknown word ("diffuse", "cm",
"posterior", "hemisphere") and the phrase is not read at all, so an out-of-vocabulary concept never
lands on a near miss. No imports from the vocabulary: values are plain strings.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")

# Words that negate what follows: "without a dominant core", "non-dominant". What follows is
# dropped (it describes something absent), unless the phrase starts with one (see read_phrase).
_NEGATIONS = frozenset({"without", "non"})

# size: area fraction categories (small < 1%, medium < 5%, large).
_SIZE_VALUES = {
    "small": "small",
    "tiny": "small",
    "medium": "medium",
    "moderate": "medium",
    "intermediate": "medium",
    "large": "large",
    "extensive": "large",
    "massive": "large",
    "giant": "large",
    "big": "large",
    "huge": "large",
}
# "Focal" sits in MM-NeuroOnco's "Small/Focal" and "Large and focal": it says nothing of size.
_SIZE_NEUTRAL = frozenset(
    {"very", "focal", "and", "or", "lesion", "mass", "like", "forming", "sized", "size", "a"}
    | {"lobulated", "round", "oval", "irregular"}  # a shape riding along: "Large and lobulated"
)

_SHAPE_VALUES = {
    "round": "round_oval",
    "rounded": "round_oval",
    "oval": "round_oval",
    "ovoid": "round_oval",
    "spherical": "round_oval",
    "globular": "round_oval",
    "circular": "round_oval",
    "elliptical": "round_oval",
    "lobulated": "lobulated",
    "multilobulated": "lobulated",
    "lobular": "lobulated",
    # MM-NeuroOnco's category is "Irregular/Spiculated": spiculated and stellate outlines are in it.
    "irregular": "irregular",
    "irregularly": "irregular",
    "spiculated": "irregular",
    "spiculation": "irregular",
    "stellate": "irregular",
}
# Margin words often ride along with a shape ("Irregular ill-defined", "Round and smooth"); they
# add nothing to the shape, and a phrase made only of them reads as no shape at all.
_SHAPE_NEUTRAL = frozenset(
    {
        "and",
        "or",
        "but",
        "with",
        "mass",
        "lesion",
        "shaped",
        "star",
        "smooth",
        "ill",
        "poorly",
        "well",
        "defined",
        "circumscribed",
        "infiltrative",
        "outline",
        "contour",
        "a",
    }
)

_SPREAD_VALUES = {
    "solitary": "solitary",
    "single": "solitary",
    "unifocal": "solitary",
    "isolated": "solitary",
    "dominant": "dominant_with_satellites",
    "satellite": "dominant_with_satellites",
    "satellites": "dominant_with_satellites",
    "multifocal": "multifocal",
    "multiple": "multifocal",
    "scattered": "multifocal",
    "several": "multifocal",
    "numerous": "multifocal",
    "multicentric": "multifocal",
}
# Weak words: they say solitary only when no other spread word is there ("Multiple focal lesions").
_SPREAD_WEAK = {"focal": "solitary", "localized": "solitary", "localised": "solitary"}
_SPREAD_NEUTRAL = frozenset(
    {
        "lesion",
        "lesions",
        "mass",
        "focus",
        "foci",
        "nodule",
        "core",
        "with",
        "additional",
        "and",
        "or",
        "but",
        "a",
        "the",
        "to",
        "one",
        "in",
        "of",
        "within",
        "region",
        "regions",
        "area",
        "discrete",
        "separate",
        "separated",
        "widely",
        "noncontiguous",
        "contiguous",
        "discontinuous",
        "different",
        "same",
        "both",
        "hemisphere",
        "hemispheres",
        "lobes",
        "unilateral",
        "bilateral",
        "well",
        "circumscribed",
        "defined",
        "confined",
        "evident",
        "obvious",
        "distant",
        "spread",
        "intracranial",
        "brain",
        "only",
        "disease",
        "involving",
        "multiple",
    }
)

# location: the 3x3 grid of the image. Rows and columns are named by image words only.
_ROWS = {"upper": "upper", "top": "upper", "lower": "lower", "bottom": "lower"}
_IMAGE_ROWS = {"superior": "upper", "inferior": "lower"}  # only with "image": else anatomical
_COLS = {"left": "left", "right": "right"}
_CENTRE = frozenset({"center", "centre", "central", "middle", "centered", "centred"})
_EDGE = frozenset({"periphery", "peripheral", "edge", "margin", "far"})
_LOCATION_NEUTRAL = frozenset(
    {
        "region",
        "sector",
        "of",
        "the",
        "image",
        "area",
        "part",
        "in",
        "near",
        "located",
        "portion",
        "on",
    }
)
# "side" names the image's side only with "image" ("Right side of the image"); "Right side" or
# "Right-sided" alone may be the patient's.
_SIDE = frozenset({"side", "sided"})

ROW_ORDER = ("upper", "center", "lower")
COL_ORDER = ("left", "center", "right")


def cell(row: str, col: str) -> str:
    """The Location value of a grid cell ("upper", "left" -> "upper_left"; centre -> "center")."""
    return "center" if row == col == "center" else f"{row}_{col}"


def _words(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    kept: list[str] = []
    skip = False
    for word in words:
        if word in _NEGATIONS:
            skip = True  # drop the negated tail: it describes what is absent
            continue
        if not skip:
            kept.append(word)
    return kept


def _single_value(
    words: list[str],
    values: dict[str, str],
    neutral: frozenset[str],
    weak: dict[str, str] | None = None,
) -> str | None:
    found: set[str] = set()
    weak_found: set[str] = set()
    for word in words:
        if word in values:
            found.add(values[word])
        elif weak and word in weak:
            weak_found.add(weak[word])
        elif word not in neutral:
            return None
    found = found or weak_found
    return found.pop() if len(found) == 1 else None


def _before_place(words: list[str]) -> list[str]:
    """``words`` up to a trailing place clause: "Isolated lesion in the posterior fossa"."""
    for i in range(len(words) - 1):
        if words[i] in {"in", "within"} and words[i + 1] == "the":
            return words[:i]
    return words


def _location_cells(words: list[str]) -> tuple[str, ...] | None:
    image = "image" in words
    rows: set[str] = set()
    cols: set[str] = set()
    centre = edge = False
    for word in words:
        if word in _ROWS or (image and word in _IMAGE_ROWS):
            rows.add(_ROWS.get(word) or _IMAGE_ROWS[word])
        elif word in _COLS:
            cols.add(_COLS[word])
        elif word in _CENTRE:
            centre = True
        elif word in _EDGE:
            edge = True
        elif word in _SIDE and image:
            continue
        elif word not in _LOCATION_NEUTRAL:
            return None
    if len(rows) > 1 or len(cols) > 1:
        return None
    if centre:
        # "Upper-center": centre is the column; "Center-right": the row; alone: both.
        if edge or (rows and cols):
            return None
        if not rows:
            rows.add("center")
        if not cols:
            cols.add("center")
    picked = [
        cell(r, c)
        for r in ROW_ORDER
        for c in COL_ORDER
        if (not rows or r in rows) and (not cols or c in cols)
    ]
    if edge:
        picked = [p for p in picked if p != "center"]
    if not picked or len(picked) == 9 or not (rows or cols or edge):
        return None
    return tuple(picked)


def read_phrase(field: str, text: str) -> tuple[str, ...] | None:
    """The values ``text`` determines for ``field``, or ``None`` when the rules cannot read it.

    One value for size, shape and spread; for location, the grid cells the phrase allows (one
    cell for "Upper-Left Region", a column for "Right side of the image").
    """
    words = _WORD.findall(text.lower())
    if not words or words[0] in {"no", "not", "none", "without"}:
        return None  # "No lesion", "Not measurable": never a value of these fields
    kept = _words(text)
    if field == "size":
        value = _single_value(kept, _SIZE_VALUES, _SIZE_NEUTRAL)
    elif field == "shape":
        value = _single_value(kept, _SHAPE_VALUES, _SHAPE_NEUTRAL)
    elif field == "spread":
        value = _single_value(_before_place(kept), _SPREAD_VALUES, _SPREAD_NEUTRAL, _SPREAD_WEAK)
    elif field == "location":
        return _location_cells(kept)
    else:
        return None
    return (value,) if value is not None else None
