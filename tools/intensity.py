"""Intensity signatures of a lesion against normal brain, per channel, with vocabulary hints.

:func:`intensity_stats` gives, for each sequence of a slice, lesion and normal-brain statistics and
cautious hints for ``signal_intensity``, ``texture``, ``margins``, ``enhancement`` (t1ce only) and
``edema`` (t2/flair only); ``None`` wherever the pixels cannot support a hint. Thresholds are
documented choices, not clinical standards. Arrays are ``(y, x)``; the lesion is every non-zero
label of the mask.
"""

from __future__ import annotations

import math

import numpy as np

from neuroonco.tools.morphology import dilate, erode

__all__ = ["intensity_stats"]

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
