"""Deterministic measurements of one 2D slice: the facts that ground every model and the critic.

:func:`measure_mask` derives geometry (size, shape, spread, location, laterality) from a label map
by the rules of DESIGN.md ("Controlled vocabulary"); :func:`intensity_stats` (re-exported from
:mod:`neuroonco.tools.intensity`) derives per-channel intensity signatures and cautious vocabulary
hints. Pure numpy (components and morphology in :mod:`neuroonco.tools.morphology`).

Conventions: arrays are ``(y, x)``; the lesion is every non-zero label (BraTS "whole tumour");
components use 8-connectivity; the image is in radiological convention (image left = patient's
right, see :mod:`neuroonco.tools.readers.base`).
"""

from __future__ import annotations

import math

import numpy as np

from neuroonco.tools.intensity import intensity_stats
from neuroonco.tools.morphology import dilate, erode, label_components

__all__ = [
    "dilate",
    "erode",
    "intensity_stats",
    "label_components",
    "mask_vocabulary",
    "measure_mask",
]

# A component smaller than this many pixels, or than this share of the lesion, is a speck (a
# stray annotation pixel) and does not count as a separate lesion. The largest one always counts.
SPECK_MIN_PX = 3
SPECK_MIN_SHARE = 0.005

_ROWS = ("upper", "center", "lower")
_COLS = ("left", "center", "right")


# Marching-squares contour length per 2x2 configuration (corners tl=1, tr=2, br=4, bl=8): one
# corner in or out cuts a half diagonal, two adjacent corners a unit edge, the two diagonal
# saddles (5, 10) two half diagonals, since 8-connectivity joins the diagonal pair.
_H = math.sqrt(2) / 2
_CONTOUR_LEN = np.array([0, _H, _H, 1, _H, 2 * _H, 1, _H, _H, 1, 2 * _H, _H, 1, _H, _H, 0])


def _fill_holes(region: np.ndarray) -> np.ndarray:
    """The region with enclosed background (4-connected, not reaching the border) filled."""
    bg_labels, _ = label_components(np.pad(~region, 1, constant_values=True), connectivity=4)
    outside = bg_labels == bg_labels[0, 0]
    return ~outside[1:-1, 1:-1]


def _perimeter(region: np.ndarray) -> float:
    """Length of the marching-squares contour (level 0.5) around a binary region."""
    p = np.pad(region, 1).astype(np.uint8)
    config = p[:-1, :-1] | (p[:-1, 1:] << 1) | (p[1:, 1:] << 2) | (p[1:, :-1] << 3)
    return float(_CONTOUR_LEN[config].sum())


def _shape_of(component: np.ndarray) -> tuple[float, float, float]:
    """(circularity, elongation, perimeter) of one component, holes filled.

    Circularity is 4*pi*A/P^2 with A the pixel count and P the contour length through edge
    midpoints; a digital disc of radius >= 5 gives about 0.9-1.0, tiny blobs are capped at 1.
    Elongation is the ratio of the principal axes from second moments (each pixel adds 1/12 of
    variance per axis, so a one-pixel line is finite).
    """
    ys, xs = np.nonzero(component)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    filled = _fill_holes(component[y0:y1, x0:x1])
    area = float(filled.sum())
    perimeter = _perimeter(filled)
    circularity = min(1.0, 4 * math.pi * area / perimeter**2)
    fy, fx = np.nonzero(filled)
    cov = np.cov(np.stack([fx, fy]).astype(np.float64), bias=True) + np.eye(2) / 12
    low, high = np.linalg.eigvalsh(cov)
    return circularity, math.sqrt(high / low), perimeter


def _laterality(labels: np.ndarray, kept: np.ndarray, width: int) -> tuple[str, float, float]:
    """Patient side from the share of lesion area each side of the image's vertical midline."""
    ys, xs = np.nonzero(labels)
    centres = xs + 0.5
    mid = width / 2
    image_left = float((centres < mid).sum() + 0.5 * (centres == mid).sum())
    share_left = image_left / len(xs)
    share_right = 1.0 - share_left
    # Radiological convention: the image's left half is the patient's right.
    if min(share_left, share_right) < 0.1:
        return ("right" if share_left > share_right else "left"), share_left, share_right
    lab = labels[ys, xs]
    lo = np.full(labels.max() + 1, np.inf)
    hi = np.full(labels.max() + 1, -np.inf)
    np.minimum.at(lo, lab, centres)
    np.maximum.at(hi, lab, centres)
    crosses = (lo[kept] <= mid) & (hi[kept] >= mid)
    return ("midline" if crosses.any() else "bilateral"), share_left, share_right


def mask_vocabulary(
    area_fraction: float, circularity: float, elongation: float, components: int, ratio: float
) -> dict[str, str]:
    """``size``, ``shape`` and ``spread`` from measured numbers by DESIGN.md's rules."""
    size = "small" if area_fraction < 0.01 else "medium" if area_fraction < 0.05 else "large"
    if circularity < 0.5:
        shape = "irregular"
    elif circularity >= 0.8 and elongation <= 1.5:
        shape = "round_oval"
    else:
        shape = "lobulated"
    if components == 1:
        spread = "solitary"
    else:
        spread = "dominant_with_satellites" if ratio >= 0.7 else "multifocal"
    return {"size": size, "shape": shape, "spread": spread}


def _location(cx: float, cy: float) -> str:
    row, col = _ROWS[min(int(cy * 3), 2)], _COLS[min(int(cx * 3), 2)]
    return "center" if row == col == "center" else f"{row}_{col}"


# A sagittal slice within this share of the volume's width of its middle is on the midline.
SAGITTAL_MIDLINE = 0.05


def sagittal_side(position: float | None) -> str | None:
    """The patient's side of a sagittal slice at ``position`` (0 = the volume's patient-right
    edge, 1 = its left edge), or None when the slice's position is unknown."""
    if position is None:
        return None
    if abs(position - 0.5) <= SAGITTAL_MIDLINE:
        return "midline"
    return "right" if position < 0.5 else "left"


def measure_mask(
    mask: np.ndarray,
    *,
    orientation_known: bool,
    mask_labels: dict[int, str] | None = None,
    plane: str | None = None,
    slice_position: float | None = None,
) -> dict | None:
    """Geometry of the lesion in a 2D label map, or ``None`` when the mask is empty.

    ``location`` is the 3x3 cell of the *image* holding the lesion centroid (image left is
    ``*_left``); ``laterality`` is the *patient's* side. ``centroid`` is ``[x, y]`` in 0..1 of
    width/height (pixel centres); ``bbox`` is ``[x0, y0, x1, y1]``, inclusive pixel indices.
    Components below ``max(SPECK_MIN_PX, SPECK_MIN_SHARE * lesion area)`` pixels are specks:
    they count in ``area_px`` but not in ``components``, ``largest_component_ratio`` or
    ``spread``.

    A sagittal slice shows no left and right: its laterality is the side of the slice itself
    (``slice_position`` across the volume, see :func:`sagittal_side`; None when unknown) and no
    image left/right shares are given.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"measure_mask needs a 2D (y, x) mask, got shape {mask.shape}")
    lesion = mask != 0
    area = int(lesion.sum())
    if area == 0:
        return None
    h, w = mask.shape
    labels, n = label_components(lesion)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    largest = int(sizes.argmax())
    kept = np.nonzero(sizes >= max(SPECK_MIN_PX, SPECK_MIN_SHARE * area))[0]
    if largest not in kept:
        kept = np.append(kept, largest)
    ratio = float(sizes[largest] / sizes[kept].sum())
    circ, elong, perimeter = _shape_of(labels == largest)
    ys, xs = np.nonzero(lesion)
    cx, cy = float((xs.mean() + 0.5) / w), float((ys.mean() + 0.5) / h)
    side, share_left, share_right = _laterality(labels, kept, w)
    area_fraction = area / (h * w)
    result = {
        "area_px": area,
        "area_fraction": round(area_fraction, 6),
        "perimeter_px": round(perimeter, 2),
        "circularity": round(circ, 4),
        "elongation": round(elong, 4),
        "components": len(kept),
        "largest_component_ratio": round(ratio, 4),
        "centroid": [round(cx, 4), round(cy, 4)],
        "bbox": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
        "image_left_share": round(share_left, 4),
        "image_right_share": round(share_right, 4),
        **mask_vocabulary(area_fraction, circ, elong, len(kept), ratio),
        "location": _location(cx, cy),
        "laterality": side,
        "laterality_source": "orientation" if orientation_known else "radiological_convention",
    }
    if plane == "sagittal":
        del result["image_left_share"], result["image_right_share"]
        result["laterality"] = sagittal_side(slice_position)
        result["laterality_source"] = "slice_position" if slice_position is not None else None
    values, counts = np.unique(mask[lesion], return_counts=True)
    if mask_labels and len(values) > 1:
        result["subregions"] = {
            mask_labels.get(int(v), f"label_{int(v)}"): round(float(c) / area, 4)
            for v, c in zip(values, counts, strict=True)
        }
    return result
