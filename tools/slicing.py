"""Pure functions that turn canonical arrays into stored 2D slices: windowing, slice choice,
label conventions and PNG encoding.

Volumes are ``(slice, row, col)`` as produced by the readers (see
:mod:`neuroonco.tools.readers.base`): ``(z, y, x)`` for axial volumes, so ``vol[z]`` is an axial
slice in radiological convention; a thick sagittal or coronal stack is sliced along axis 0 the
same way, in its own plane (``LoadedCase.plane``).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# Percentiles are taken on an even-strided subsample of at most this many voxels (background
# dropped): a 240x240x155 volume is windowed in tens of ms and the window moves by well under
# one grey level.
PERCENTILE_SAMPLE = 1_000_000

# The tumour's z-extent for spreading K slices: slices whose lesion area is at least this share
# of the largest, so the spread does not land on the few-pixel tips of the tumour.
EXTENT_MIN_SHARE = 0.1

# A tumour-free slice is a negative candidate when its brain area is at least this share of the
# largest brain area (no skull-cap or neck slices) and it is this many slices away from tumour
# (the annotation's first and last slices are often incomplete).
BRAIN_MIN_SHARE = 0.5
NEGATIVE_GAP = 3

PNG_COMPRESS_LEVEL = 2


@dataclass(frozen=True)
class SliceChoice:
    """One axial slice to store: its index and whether it was picked as tumour-free."""

    index: int
    is_negative: bool = False


def window_bounds(
    image: np.ndarray, *, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Robust intensity window ``(lo, hi)``: percentiles of the non-zero voxels of ``image``.

    Computed once per volume so every slice of it shares one window; percentiles come from an
    even-strided subsample of at most ``PERCENTILE_SAMPLE`` voxels.
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"window_bounds needs a 2D or 3D array, got shape {arr.shape}")
    # Subsample whole slices first (at least 16 of them), so a volume that is a reoriented
    # view is never copied whole by the flattening.
    zstep = min(-(-arr.size // PERCENTILE_SAMPLE), max(1, arr.shape[0] // 16))
    flat = (arr[::zstep] if arr.ndim == 3 else arr).ravel()
    if flat.size > PERCENTILE_SAMPLE:
        flat = flat[:: -(-flat.size // PERCENTILE_SAMPLE)]
    fg = flat[flat != 0]
    if fg.size == 0:
        fg = arr[arr != 0]  # very sparse foreground the subsample missed
    if fg.size == 0:
        return 0.0, 0.0
    lo, hi = (float(v) for v in np.percentile(fg, [low, high]))
    if hi <= lo:
        lo, hi = float(fg.min()), float(fg.max())
    return lo, hi


def apply_window(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scale ``image`` from ``[lo, hi]`` to uint8, clipping outside.

    Voxels that are exactly zero (the background of skull-stripped data) stay 0 even when the
    window starts below zero; a degenerate window shows the foreground white on black.
    """
    arr = np.asarray(image)
    if hi <= lo:
        return np.where(arr != 0, 255, 0).astype(np.uint8)
    scaled = arr.astype(np.float32)  # a copy; scaled in place to spare passes over a volume
    scaled -= np.float32(lo)
    scaled *= np.float32(255.0 / (hi - lo))
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    out = scaled.astype(np.uint8)
    if lo < 0:
        out[arr == 0] = 0
    return out


def normalise_to_uint8(image: np.ndarray, *, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Window ``image`` (2D or 3D) to uint8 by robust percentiles of its non-zero voxels."""
    return apply_window(image, *window_bounds(image, low=low, high=high))


def _spread(candidates: np.ndarray, anchor: int, k: int, lo: float, hi: float) -> list[int]:
    """``k`` distinct candidates near evenly spaced targets in [lo, hi], ``anchor`` included."""
    if k >= len(candidates):
        return sorted(int(c) for c in candidates)
    targets = np.linspace(lo, hi, k) if k > 1 else np.array([float(anchor)])
    targets[np.abs(targets - anchor).argmin()] = anchor
    chosen: list[int] = []
    pool = [int(c) for c in candidates]
    for t in targets:
        best = min(pool, key=lambda c: (abs(c - t), c))
        chosen.append(best)
        pool.remove(best)
    return sorted(chosen)


def _brain_areas(image: np.ndarray | None, n_slices: int) -> np.ndarray:
    """Brain pixels per slice; without an image, a plateau over the central 60% of z."""
    if image is None:
        areas = np.zeros(n_slices)
        areas[int(0.2 * n_slices) : max(int(0.8 * n_slices), int(0.2 * n_slices) + 1)] = 1.0
        return areas
    arr = np.asarray(image)
    fg = arr[arr != 0]
    thr = float(np.percentile(fg[:: max(1, fg.size // 100_000)], 10)) if fg.size else 0.0
    return ((arr >= thr) & (arr != 0)).sum(axis=(1, 2)).astype(np.float64)


def select_slices(
    mask: np.ndarray | None,
    *,
    n_slices: int,
    per_volume: int = 1,
    negatives: int = 0,
    image: np.ndarray | None = None,
) -> list[SliceChoice]:
    """Axial slices to store from a ``(z, y, x)`` volume of ``n_slices`` slices.

    With a tumour: ``per_volume`` indices spread evenly over the tumour's z-extent, always
    including the slice of largest lesion area, plus up to ``negatives`` tumour-free slices
    from the middle of the brain-containing, tumour-free range (``image`` tells where the brain
    is; without it the central 60% of z is assumed). Without a mask: ``per_volume`` slices spread
    over the middle half of the brain around the middle slice. An empty mask gives the latter,
    marked negative (the volume is annotated and tumour-free). Sorted by index; no repeats.
    """
    if per_volume < 1 or negatives < 0 or n_slices < 1:
        raise ValueError("need n_slices >= 1, per_volume >= 1 and negatives >= 0")
    if mask is not None and (mask.ndim != 3 or mask.shape[0] != n_slices):
        raise ValueError(f"mask shape {mask.shape} is not (z, y, x) with z = {n_slices}")
    brain = _brain_areas(image, n_slices)
    areas = (
        np.zeros(n_slices) if mask is None else np.count_nonzero(mask, axis=(1, 2)).astype(float)
    )
    if not areas.any():
        rich = np.nonzero(brain >= BRAIN_MIN_SHARE * brain.max())[0] if brain.any() else []
        z0, z1 = (int(rich[0]), int(rich[-1])) if len(rich) else (0, n_slices - 1)
        middle = (z0 + z1) // 2
        quarter = (z1 - z0) / 4
        candidates = np.arange(n_slices)
        picks = _spread(candidates, middle, per_volume, middle - quarter, middle + quarter)
        return [SliceChoice(i, is_negative=mask is not None) for i in picks]
    best = int(areas.argmax())
    extent = np.nonzero(areas >= EXTENT_MIN_SHARE * areas[best])[0]
    tumour = np.nonzero(areas > 0)[0]
    picks = _spread(tumour, best, per_volume, extent[0], extent[-1])
    choices = [SliceChoice(i) for i in picks]
    if negatives:
        choices += [SliceChoice(i, True) for i in _negatives(areas, brain, negatives)]
    return sorted(choices, key=lambda c: c.index)


def _negatives(areas: np.ndarray, brain: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` tumour-free slices well inside the brain and away from the tumour."""
    z = np.arange(len(areas))
    tumour = np.nonzero(areas > 0)[0]
    near = np.abs(z[:, None] - tumour[None, :]).min(axis=1) < NEGATIVE_GAP
    ok = ~near & (areas == 0) & (brain > 0) & (brain >= BRAIN_MIN_SHARE * brain.max())
    candidates = z[ok]
    if len(candidates) <= n:
        return [int(c) for c in candidates]
    # The middle half of the candidates, evenly: central brain, not adjacent to each other.
    lo, hi = len(candidates) // 4, (3 * len(candidates) - 1) // 4
    idx = np.unique(np.round(np.linspace(lo, hi, n)).astype(int))
    return [int(candidates[i]) for i in idx]


def relabel_brats2021(mask: np.ndarray) -> np.ndarray:
    """BraTS 2021 labels (1 necrotic core, 2 edema, 4 enhancing) to 1, 2, 3 (as BraTS 2023)."""
    out = np.array(mask, dtype=np.uint8, copy=True)
    out[out == 4] = 3
    return out


def to_png_bytes(arr: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(y, x)`` grey or ``(y, x, 3)`` RGB array.

    Only IHDR, IDAT and IEND chunks are written: no text, time or profile chunks, so nothing
    identifying can ride along.
    """
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"PNG needs uint8 (y, x) or (y, x, 3), got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def write_png(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    """Write ``arr`` as PNG atomically (temp file + rename), creating parent folders."""
    path = Path(path)
    data = to_png_bytes(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp name in the same folder: the rename is atomic and a crash leaves no half
    # PNG under the final name (the file gets the umask's mode, unlike mkstemp's 0600).
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
