"""The synthetic phantoms: determinism, shapes, labels, sides and per-sequence contrast."""

from __future__ import annotations

import numpy as np
import pytest

from neuroonco.tools.phantom import (
    FULL_SHAPE,
    SEQUENCES,
    make_phantom,
    make_slice_phantom,
    smooth_noise,
)

SMALL = (40, 80, 80)


def _reference(ph, seq: str) -> float:
    """Median of normal tissue in a box around the head centre (white matter, mostly)."""
    cz, cy, cx = (round(v) for v in ph.truth["head_centre"])
    box = (slice(cz - 4, cz + 4), slice(cy - 8, cy + 8), slice(cx - 8, cx + 8))
    vol, mask = ph.volumes[seq][box], ph.mask[box]
    return float(np.median(vol[(mask == 0) & (vol > 0)]))


def test_same_seed_same_phantom_and_different_seeds_differ():
    a, b, c = (make_phantom(SMALL, seed=s) for s in (7, 7, 8))
    for seq in SEQUENCES:
        np.testing.assert_array_equal(a.volumes[seq], b.volumes[seq])
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.truth == b.truth
    assert a.truth["head_centre"] != c.truth["head_centre"]
    assert not np.array_equal(a.volumes["t1"] > 0, c.volumes["t1"] > 0)  # another head outline


def test_shapes_dtypes_labels_and_background():
    ph = make_phantom(SMALL, seed=1)
    assert set(ph.volumes) == set(SEQUENCES)
    for vol in ph.volumes.values():
        assert vol.shape == SMALL and vol.dtype == np.float32
        assert vol[0, 0, 0] == 0.0 and vol.max() > 500
    assert ph.mask.shape == SMALL and ph.mask.dtype == np.uint8
    assert set(np.unique(ph.mask)) == {0, 1, 2, 3}
    assert ph.truth["tumour"] and ph.truth["n_lesions"] == 1
    assert ph.truth["diagnosis"] == "glioma"
    assert ph.spacing == pytest.approx((155 / 40, 3.0, 3.0))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("side", ["left", "right"])
def test_tumour_lies_on_the_patients_side(seed, side):
    ph = make_phantom(SMALL, seed=seed, tumour_side=side)
    assert ph.truth["side"] == side
    xs = np.nonzero(np.isin(ph.mask, (1, 3)))[2]
    head_x = ph.truth["head_centre"][2]
    # Axis 2 runs from the patient's right to left: left lesions have the larger x.
    assert (xs.mean() > head_x) == (side == "left")
    assert (ph.truth["centre"][2] > head_x) == (side == "left")


def test_sequence_contrasts_are_plausible():
    ph = make_phantom(SMALL, seed=3, radius_mm=20)
    m = ph.mask
    ref = {seq: _reference(ph, seq) for seq in SEQUENCES}
    assert ph.volumes["t1"][np.isin(m, (1, 3))].mean() < ref["t1"]  # tumour hypointense on T1
    assert ph.volumes["t1ce"][m == 3].mean() > 1.3 * ref["t1ce"]  # enhancing rim bright
    assert ph.volumes["t1ce"][m == 1].mean() < ref["t1ce"]  # necrotic core dark
    assert ph.volumes["t2"][m == 2].mean() > 1.3 * ref["t2"]  # edema bright on T2
    assert ph.volumes["flair"][m == 2].mean() > 1.3 * ref["flair"]  # and on FLAIR
    csf = (m == 0) & (ph.volumes["t2"] > 1000)  # CSF: brightest normal tissue on T2
    assert csf.sum() > 100
    assert ph.volumes["flair"][csf].mean() < 0.5 * ref["flair"]  # dark on FLAIR


def test_no_tumour_phantom():
    ph = make_phantom(SMALL, seed=2, tumour=False)
    assert not ph.mask.any()
    assert ph.truth["tumour"] is False and ph.truth["n_lesions"] == 0
    assert ph.truth["side"] is None and ph.truth["diagnosis"] == "no_tumor"


def test_multifocal_lesions_are_separate():
    ph = make_phantom((64, 120, 120), seed=4, n_lesions=3, diagnosis="metastasis")
    assert ph.truth["n_lesions"] == 3 and len(ph.truth["centres"]) == 3
    for centre in ph.truth["centres"]:
        assert ph.mask[tuple(round(v) for v in centre)] in (1, 3)
    spacing = np.array(ph.spacing)
    c = np.array(ph.truth["centres"])
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.linalg.norm((c[i] - c[j]) * spacing) > 10.0


def test_diagnosis_shapes_the_lesion():
    men = make_phantom(SMALL, seed=5, diagnosis="meningioma")
    assert 1 not in np.unique(men.mask) and (men.mask == 3).any()  # solid, no necrosis
    pit = make_phantom(SMALL, seed=5, diagnosis="pituitary")
    assert pit.truth["diagnosis"] == "pituitary_tumor" and pit.truth["side"] == "midline"
    assert abs(pit.truth["centre"][2] - pit.truth["head_centre"][2]) < 1.0
    assert pit.truth["centre"][0] < pit.truth["head_centre"][0]  # below the head centre


@pytest.mark.parametrize("kind", ["round", "lobulated", "irregular"])
def test_shape_kinds(kind):
    ph = make_phantom(SMALL, seed=6, shape_kind=kind, radius_mm=18)
    assert ph.truth["shape_kind"] == kind
    assert (ph.mask == 3).sum() > 50


def test_shape_kinds_differ_and_bad_arguments_are_refused():
    masks = [make_phantom(SMALL, seed=6, shape_kind=k).mask for k in ("round", "irregular")]
    assert not np.array_equal(*masks)
    with pytest.raises(ValueError, match="shape_kind"):
        make_phantom(SMALL, seed=0, shape_kind="star")
    with pytest.raises(ValueError, match="tumour_side"):
        make_phantom(SMALL, seed=0, tumour_side="up")


def test_full_size_phantom_has_brats_geometry():
    ph = make_phantom(FULL_SHAPE, seed=1)
    assert ph.volumes["flair"].shape == FULL_SHAPE and ph.spacing == (1.0, 1.0, 1.0)


def test_slice_phantom():
    img, mask = make_slice_phantom(192, seed=3, tumour_side="left")
    assert img.shape == mask.shape == (192, 192)
    assert img.dtype == np.uint8 and mask.dtype == np.uint8
    assert img.max() > 150 and img[0, 0] == 0
    assert set(np.unique(mask)) <= {0, 1, 2, 3} and (mask == 3).any()
    assert np.nonzero(mask)[1].mean() > 96  # the patient's left is the image's right
    again, _ = make_slice_phantom(192, seed=3, tumour_side="left")
    np.testing.assert_array_equal(img, again)
    other, _ = make_slice_phantom(192, seed=4, tumour_side="left")
    assert not np.array_equal(img, other)


def test_slice_phantom_without_tumour_and_per_sequence():
    img, mask = make_slice_phantom(128, seed=2, tumour=False, sequence="flair")
    assert not mask.any() and img.std() > 10
    t1, m1 = make_slice_phantom(128, seed=9, sequence="t1")
    t1ce, m2 = make_slice_phantom(128, seed=9, sequence="t1ce")
    np.testing.assert_array_equal(m1, m2)
    rim = m1 == 3
    assert t1ce[rim].mean() / t1ce[m1 == 0].mean() > t1[rim].mean() / t1[m1 == 0].mean()


def test_smooth_noise_is_smooth():
    field = smooth_noise(np.random.default_rng(0), (20, 30, 40), 5)
    assert field.shape == (20, 30, 40) and field.dtype == np.float32
    assert np.abs(np.diff(field, axis=2)).mean() < 0.2 * field.std()
