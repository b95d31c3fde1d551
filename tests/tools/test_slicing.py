"""Windowing, slice choice, BraTS relabelling and PNG writing."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroonco.tools.slicing import (
    SliceChoice,
    normalise_to_uint8,
    relabel_brats2021,
    select_slices,
    to_png_bytes,
    write_png,
)

Z, Y, X = 60, 48, 48


def head_volume(seed: int = 0) -> np.ndarray:
    """An ellipsoid 'brain' spanning z 10..49 on a zero background."""
    zz, yy, xx = np.ogrid[:Z, :Y, :X]
    inside = ((zz - 30) / 20) ** 2 + ((yy - 24) / 20) ** 2 + ((xx - 24) / 18) ** 2 <= 1
    vol = np.zeros((Z, Y, X), np.float32)
    vol[inside] = np.random.default_rng(seed).normal(500, 50, inside.sum())
    return vol


def tumour_mask(z0: int, z1: int, peak: int) -> np.ndarray:
    """A tumour on slices z0..z1 whose area peaks at ``peak``."""
    mask = np.zeros((Z, Y, X), np.uint8)
    yy, xx = np.ogrid[:Y, :X]
    for z in range(z0, z1 + 1):
        r = 8 - abs(z - peak) * 6 / max(1, max(peak - z0, z1 - peak))
        mask[z][(yy - 20) ** 2 + (xx - 16) ** 2 <= max(r, 1) ** 2] = 2
    return mask


# --- normalise_to_uint8 ---------------------------------------------------------------------


def test_window_clips_outliers_and_keeps_background_black() -> None:
    img = np.zeros((50, 50), np.float32)
    img[10:40, 10:40] = np.linspace(100, 200, 900).reshape(30, 30)
    img[20, 20] = 1e6  # a hot pixel must not squash the window
    out = normalise_to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert out[0, 0] == 0 and out[20, 20] == 255
    inside = out[10:40, 10:40]
    assert inside.min() <= 3 and np.percentile(inside, 99) >= 250


def test_volume_shares_one_window() -> None:
    vol = np.zeros((2, 10, 10), np.float32)
    vol[0] = 100.0
    vol[1] = 1000.0
    vol[0, 0, 0] = vol[1, 0, 0] = 1.0
    out = normalise_to_uint8(vol)
    assert out[0].max() < out[1].max()  # the dim slice stays dim, not stretched on its own


def test_negative_values_and_degenerate_images() -> None:
    img = np.zeros((20, 20), np.float32)
    img[5:15, 5:15] = np.linspace(-2, 2, 100).reshape(10, 10)
    out = normalise_to_uint8(img)
    assert out[0, 0] == 0 and out[14, 14] > 200
    assert not normalise_to_uint8(np.zeros((5, 5))).any()
    flat = np.zeros((5, 5))
    flat[1:3, 1:3] = 7.0
    assert set(np.unique(normalise_to_uint8(flat))) == {0, 255}
    with pytest.raises(ValueError):
        normalise_to_uint8(np.zeros(5))


def test_window_is_fast_on_a_brats_sized_volume() -> None:
    vol = np.zeros((155, 240, 240), np.float32)
    vol[20:135, 30:210, 40:200] = np.random.default_rng(0).random((115, 180, 160)) * 1000
    normalise_to_uint8(vol)  # warm up
    start = time.perf_counter()
    out = normalise_to_uint8(vol)
    assert time.perf_counter() - start < 1.0  # ~30 ms typical; loose for slow CI machines
    assert out[77].max() == 255 and out[0].max() == 0


# --- select_slices --------------------------------------------------------------------------


def test_default_is_the_largest_tumour_slice() -> None:
    mask = tumour_mask(20, 40, peak=33)
    assert select_slices(mask, n_slices=Z) == [SliceChoice(33, False)]


def test_per_volume_spreads_over_the_extent_and_keeps_the_peak() -> None:
    mask = tumour_mask(20, 40, peak=33)
    picks = select_slices(mask, n_slices=Z, per_volume=4)
    idx = [c.index for c in picks]
    assert len(idx) == 4 and idx == sorted(set(idx))
    assert 33 in idx
    assert all(mask[i].any() for i in idx)
    assert idx[-1] - idx[0] >= 10  # spread, not bunched around the peak
    assert not any(c.is_negative for c in picks)


def test_more_requested_than_tumour_slices() -> None:
    mask = tumour_mask(30, 32, peak=31)
    assert [c.index for c in select_slices(mask, n_slices=Z, per_volume=10)] == [30, 31, 32]


def test_negatives_are_tumour_free_brain_slices() -> None:
    vol = head_volume()
    mask = tumour_mask(14, 24, peak=18)
    picks = select_slices(mask, n_slices=Z, per_volume=2, negatives=3, image=vol)
    negatives = [c.index for c in picks if c.is_negative]
    assert len(negatives) == 3 and len(set(negatives)) == 3
    brain = (vol > 0).sum(axis=(1, 2))
    for i in negatives:
        assert not mask[i].any()
        assert brain[i] >= 0.5 * brain.max()  # not a skull-cap or empty slice
        assert i > 24 + 2  # away from the tumour's last slice
    assert [c.index for c in picks] == sorted(c.index for c in picks)


def test_without_mask_the_middle_of_the_brain() -> None:
    vol = np.zeros((Z, Y, X), np.float32)
    vol[30:50] = 1.0  # brain only in slices 30..49
    assert select_slices(None, n_slices=Z, image=vol) == [SliceChoice(39, False)]
    spread = select_slices(None, n_slices=Z, per_volume=3, image=vol)
    assert [c.index for c in spread][1] == 39 and all(30 <= c.index < 50 for c in spread)
    assert select_slices(None, n_slices=Z) == [SliceChoice(29, False)]


def test_empty_mask_gives_negative_middle_slices() -> None:
    picks = select_slices(np.zeros((Z, Y, X), np.uint8), n_slices=Z, per_volume=2)
    assert len(picks) == 2 and all(c.is_negative for c in picks)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        select_slices(np.zeros((Z, Y, X)), n_slices=Z + 1)
    with pytest.raises(ValueError):
        select_slices(None, n_slices=Z, per_volume=0)


# --- labels and PNG -------------------------------------------------------------------------


def test_relabel_brats2021() -> None:
    mask = np.array([[0, 1, 2, 4]], np.uint8)
    out = relabel_brats2021(mask)
    assert out.tolist() == [[0, 1, 2, 3]]
    assert mask.tolist() == [[0, 1, 2, 4]]  # input untouched


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, names = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        names.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return names


@pytest.mark.parametrize("shape", [(32, 40), (32, 40, 3)])
def test_png_round_trip_without_metadata(shape: tuple[int, ...]) -> None:
    arr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    data = to_png_bytes(arr)
    assert set(png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)


def test_png_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_png_bytes(np.zeros((4, 4), np.float32))


def test_write_png_creates_folders_atomically(tmp_path: Path) -> None:
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8)
    path = write_png(tmp_path / "a" / "b" / "slice.png", arr)
    assert path.exists()
    assert np.array_equal(np.asarray(Image.open(path)), arr)
    write_png(path, arr[::-1])  # overwrite
    assert np.array_equal(np.asarray(Image.open(path)), arr[::-1])
    assert [p.name for p in path.parent.iterdir()] == ["slice.png"]  # no temp files left
