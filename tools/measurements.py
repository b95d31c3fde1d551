"""Deterministic measurements of one 2D slice: the facts that ground every model and the critic.

:func:`measure_mask` derives geometry (size, shape, spread, location, laterality) from a label map
by the rules of DESIGN.md ("Controlled vocabulary"); :func:`intensity_stats` derives per-channel
intensity signatures and cautious vocabulary hints (``None`` wherever the pixels cannot support
one). Everything here is pure numpy: connected components and morphology are implemented below
(no scipy), fast enough for a 240x240 slice in a few milliseconds.

Conventions: arrays are ``(y, x)``; the lesion is every non-zero label (BraTS "whole tumour");
components use 8-connectivity; the image is in radiological convention (image left = patient's
right, see :mod:`neuroonco.tools.readers.base`).
"""

from __future__ import annotations

import math

import numpy as np

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


def label_components(mask: np.ndarray, *, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label the connected non-zero regions of a 2D array, like ``scipy.ndimage.label``.

    Returns ``(labels, n)``: int32 labels 1..n in raster order of first appearance, 0 elsewhere.
    Works on horizontal runs: runs of adjacent rows that touch are joined by vectorised
    min-label propagation with pointer jumping, so the cost grows with the number of runs.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, not {connectivity}")
    fg = np.asarray(mask) != 0
    if fg.ndim != 2:
        raise ValueError(f"label_components needs a 2D array, got shape {fg.shape}")
    h, w = fg.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = fg
    starts = np.diff(padded, axis=1) == 1  # (h, w + 1); a run starts at column c
    n_runs = int(starts.sum())
    if n_runs == 0:
        return np.zeros((h, w), np.int32), 0
    run_id = (np.cumsum(starts[:, :w].ravel()) - 1).reshape(h, w)  # valid on fg pixels only
    a, b = _run_edges(fg, run_id, connectivity)
    parent = np.arange(n_runs)
    while a.size:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        low = np.minimum(pa, pb)
        # pa, pb are roots (parent is flattened below), so hooking them merges whole trees.
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, compact = np.unique(parent, return_inverse=True)
    labels = np.zeros((h, w), np.int32)
    labels[fg] = compact[run_id[fg]] + 1
    return labels, len(roots)


def _run_edges(fg: np.ndarray, run_id: np.ndarray, connectivity: int) -> tuple[np.ndarray, ...]:
    """Pairs of run ids that touch between consecutive rows."""
    top, bot, rt, rb = fg[:-1], fg[1:], run_id[:-1], run_id[1:]
    pairs = []
    both = top & bot
    pairs.append((rt[both], rb[both]))
    if connectivity == 8:
        diag = top[:, :-1] & bot[:, 1:]
        pairs.append((rt[:, :-1][diag], rb[:, 1:][diag]))
        anti = top[:, 1:] & bot[:, :-1]
        pairs.append((rt[:, 1:][anti], rb[:, :-1][anti]))
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    if a.size == 0:
        return a, b
    key = np.unique(a.astype(np.int64) * (int(run_id.max()) + 1) + b)
    return key // (int(run_id.max()) + 1), key % (int(run_id.max()) + 1)


def _grow(x: np.ndarray, steps: int, outside: bool) -> np.ndarray:
    """Binary dilation alternating 3x3 square and cross (an octagon, close to a disc)."""
    for i in range(steps):
        p = np.pad(x, 1, constant_values=outside)
        if i % 2 == 0:
            r = p[:, :-2] | p[:, 1:-1] | p[:, 2:]
            x = r[:-2] | r[1:-1] | r[2:]
        else:
            x = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return x


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by about ``radius`` pixels (octagonal structuring element)."""
    return _grow(np.asarray(mask) != 0, radius, outside=False)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by about ``radius`` pixels; outside the image counts as background."""
    return ~_grow(np.asarray(mask) == 0, radius, outside=True)


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


def measure_mask(
    mask: np.ndarray, *, orientation_known: bool, mask_labels: dict[int, str] | None = None
) -> dict | None:
    """Geometry of the lesion in a 2D label map, or ``None`` when the mask is empty.

    ``location`` is the 3x3 cell of the *image* holding the lesion centroid (image left is
    ``*_left``); ``laterality`` is the *patient's* side. ``centroid`` is ``[x, y]`` in 0..1 of
    width/height (pixel centres); ``bbox`` is ``[x0, y0, x1, y1]``, inclusive pixel indices.
    Components below ``max(SPECK_MIN_PX, SPECK_MIN_SHARE * lesion area)`` pixels are specks:
    they count in ``area_px`` but not in ``components``, ``largest_component_ratio`` or
    ``spread``.
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
    values, counts = np.unique(mask[lesion], return_counts=True)
    if mask_labels and len(values) > 1:
        result["subregions"] = {
            mask_labels.get(int(v), f"label_{int(v)}"): round(float(c) / area, 4)
            for v, c in zip(values, counts, strict=True)
        }
    return result


# --- Intensity signatures -------------------------------------------------------------------
# Thresholds of the hints below; each is a documented choice, not a clinical standard.
NEAR_LESION_PX = 3  # "normal brain" excludes the lesion dilated by this much
MIN_LESION_PX = 20  # fewer lesion pixels: no texture/enhancement judgement
MIN_NORMAL_PX = 50  # fewer normal-brain pixels: no reference, so no ratio-based hints
HYPER, HYPO = 1.15, 0.87  # lesion/normal mean ratio bounds of isointense
MIXED_SHARE = 0.2  # mixed: this share of (3x3-smoothed) lesion px above HYPER and below HYPO
TEXTURE_HOMOGENEOUS, TEXTURE_HETEROGENEOUS = 0.15, 0.25  # lesion cv; in between -> None
SHARP_EDGE, SOFT_EDGE = 0.3, 0.2  # edge sharpness (see _margins); in between -> None
ENHANCING = 1.3  # t1ce: a (smoothed) pixel brighter than this x normal mean enhances
EDEMA_MILD, EDEMA_EXTENSIVE = 0.05, 0.5  # edema share of the lesion (named label) or of the
# hyperintense peri-lesional ring (no named label): below MILD none, from EXTENSIVE extensive


class _Regions:
    """Masks shared by every channel of one slice, computed once."""

    def __init__(self, mask: np.ndarray, mask_labels: dict[int, str] | None) -> None:
        lesion = mask != 0
        self.lesion = lesion
        self.near = dilate(lesion, NEAR_LESION_PX)
        self.band = dilate(lesion, 3) & ~erode(lesion, 3)
        self.edge_px = int((lesion & ~erode(lesion, 1)).sum())
        self.inner = erode(lesion, 2) & ~erode(lesion, 6)
        self.outer = dilate(lesion, 6) & ~dilate(lesion, 2)
        radius = math.sqrt(lesion.sum() / math.pi)
        reach = max(3, round(0.5 * radius))
        # The first pixel outside is skipped: smoothing and partial volume bleed into it.
        self.peri = dilate(lesion, reach + 1) & ~dilate(lesion, 1)
        self.far = ~dilate(lesion, reach)
        self.subregions: dict[str, np.ndarray] = {}
        for v in np.unique(mask[lesion]) if mask_labels else ():
            self.subregions[mask_labels.get(int(v), f"label_{int(v)}")] = mask == v
        edema = [m for name, m in self.subregions.items() if "edema" in name.lower()]
        self.edema_share = None
        core = lesion
        if edema:
            edema_px = np.logical_or.reduce(edema)
            self.edema_share = float(edema_px.sum() / lesion.sum())
            if (lesion & ~edema_px).sum() >= 10:  # enhancement is judged on the tumour core
                core = lesion & ~edema_px
        self.core_region = core
        width = max(2, round(0.3 * math.sqrt(core.sum() / math.pi)))
        self.centre = erode(core, width)
        self.rim = core & ~self.centre


def _box3(img: np.ndarray) -> np.ndarray:
    """3x3 mean, so single noisy pixels do not count as bright or dark parts."""
    p = np.pad(img, 1, mode="edge")
    r = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (r[:-2] + r[1:-1] + r[2:]) / 9.0


def _brain(img: np.ndarray) -> np.ndarray:
    """Pixels above the 10th percentile of the non-zero ones (and above 10% of their 99th, so
    noisy non-zero background of 8-bit images stays out)."""
    fg = img[img != 0]
    if fg.size == 0:
        return np.zeros(img.shape, bool)
    low, high = np.percentile(fg, [10, 99])
    return img > max(low, 0.1 * high)


def _signal(lesion_smooth: np.ndarray, normal_mean: float, ratio: float) -> str:
    brighter = float((lesion_smooth > HYPER * normal_mean).mean())
    darker = float((lesion_smooth < HYPO * normal_mean).mean())
    if brighter > MIXED_SHARE and darker > MIXED_SHARE:
        return "mixed"
    return "hyperintense" if ratio > HYPER else "hypointense" if ratio < HYPO else "isointense"


def _margins(img: np.ndarray, brain: np.ndarray, g: _Regions, nm: float) -> float | None:
    """Edge sharpness: the boundary's gradient over the contrast between bands 2-6 px inside
    and outside the lesion. The gradient is the mean of the strongest 2 x (boundary length)
    pixels within 3 px of the boundary, so a mask drawn a pixel or two off the edge still finds
    it. A step edge gives ~0.45, a Gaussian blur of sigma 2 px ~0.2."""
    inner, outer = img[g.inner], img[g.outer & brain]
    if inner.size < 10 or outer.size < 10:
        return None
    delta = abs(float(inner.mean()) - float(outer.mean()))
    if delta < 0.1 * nm:  # no visible edge to judge
        return None
    gy, gx = np.gradient(img)
    grad = np.hypot(gx, gy)[g.band & (brain | g.lesion)]
    k = min(grad.size, 2 * g.edge_px)
    return float(np.partition(grad, grad.size - k)[grad.size - k :].mean() / delta)


def _enhancement(smooth: np.ndarray, g: _Regions, nm: float) -> str | None:
    """ring: bright pixels sit in the outer band of the tumour core around a dark centre;
    solid: most of it is bright; patchy: bright in parts; none: hardly any bright pixel."""
    region = g.core_region
    if region.sum() < MIN_LESION_PX:
        return None
    bright = smooth > ENHANCING * nm
    share = float(bright[region].mean())
    if share < 0.1:
        return "none"
    if g.centre.sum() >= 4:
        rim_b, centre_b = float(bright[g.rim].mean()), float(bright[g.centre].mean())
        in_rim = float((bright & g.rim).sum() / (bright & region).sum())
        darker_centre = smooth[g.centre].mean() < 0.8 * smooth[g.rim].mean()
        if in_rim >= 0.75 and rim_b >= 0.25 and centre_b <= 0.35 and darker_centre:
            return "ring"
    return "solid" if share >= 0.6 else "patchy"


def _grade_edema(share: float) -> str:
    return "none" if share < EDEMA_MILD else "mild" if share < EDEMA_EXTENSIVE else "extensive"


def _edema(img: np.ndarray, smooth: np.ndarray, brain: np.ndarray, g: _Regions) -> str | None:
    if g.edema_share is not None:
        return _grade_edema(g.edema_share)
    peri, far = g.peri & brain, img[g.far & brain]
    if peri.sum() < 10 or far.size < MIN_NORMAL_PX or far.mean() <= 0:
        return None
    return _grade_edema(float((smooth[peri] > 1.2 * far.mean()).mean()))


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _channel_stats(name: str, img: np.ndarray, g: _Regions) -> dict:
    if img.shape != g.lesion.shape:
        raise ValueError(f"channel {name!r} has shape {img.shape}, mask {g.lesion.shape}")
    brain = _brain(img)
    les, normal = img[g.lesion], img[brain & ~g.near]
    lm, ls = float(les.mean()), float(les.std())
    nm = float(normal.mean()) if normal.size >= MIN_NORMAL_PX else None
    # Ratios need a reference and a non-negative scale (z-scored images have none).
    scaled = nm is not None and nm > 0 and float(img.min()) >= 0
    ratio = lm / nm if scaled else None
    cv = ls / lm if lm > 0 else None
    smooth = _box3(img)
    sharp = _margins(img, brain, g, nm) if scaled else None
    texture = None
    if cv is not None and les.size >= MIN_LESION_PX:
        if cv < TEXTURE_HOMOGENEOUS:
            texture = "homogeneous"
        elif cv > TEXTURE_HETEROGENEOUS:
            texture = "heterogeneous"
    margins = None
    if sharp is not None and sharp >= SHARP_EDGE:
        margins = "well_circumscribed"
    elif sharp is not None and sharp <= SOFT_EDGE:
        margins = "ill_defined"
    out = {
        "lesion_mean": _round(lm),
        "lesion_std": _round(ls),
        "normal_mean": _round(nm),
        "normal_std": _round(normal.std()) if nm is not None else None,
        "contrast_ratio": _round(ratio),
        "cv": _round(cv),
        "edge_sharpness": _round(sharp),
        "signal_intensity": _signal(smooth[g.lesion], nm, ratio) if scaled else None,
        "texture": texture,
        "margins": margins,
        "enhancement": _enhancement(smooth, g, nm) if scaled and name == "t1ce" else None,
        "edema": _edema(img, smooth, brain, g) if name in ("t2", "flair") else None,
    }
    if g.subregions:
        out["subregion_means"] = {k: _round(img[m].mean()) for k, m in g.subregions.items()}
    return out


def intensity_stats(
    images: dict[str, np.ndarray], mask: np.ndarray, *, mask_labels: dict[int, str] | None = None
) -> dict:
    """Per-channel intensity signature of the lesion against normal brain, with hints.

    Returns ``{channel: {...}}`` (``{}`` when the mask is empty): lesion and normal-brain
    mean/std, ``contrast_ratio``, ``cv``, ``edge_sharpness``, ``subregion_means`` (with labels)
    and the vocabulary hints ``signal_intensity``, ``texture``, ``margins``, ``enhancement``
    (``t1ce`` only) and ``edema`` (``t2``/``flair`` only). A hint the pixels cannot support is
    ``None``. Normal brain = pixels above a low intensity threshold, minus the lesion dilated by
    ``NEAR_LESION_PX``; it mixes grey and white matter, so it is a proxy for "normal white
    matter". Edema comes from a mask label whose name contains "edema" when there is one.
    """
    mask = np.asarray(mask)
    if not (mask != 0).any():
        return {}
    regions = _Regions(mask, mask_labels)
    return {
        name: _channel_stats(name, np.asarray(img, np.float64), regions)
        for name, img in images.items()
    }
