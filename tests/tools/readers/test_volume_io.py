"""Volume reading: canonical LPS orientation, NIfTI voxels read without ITK's silent repairs."""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from neuroonco.errors import UnreadableInput
from neuroonco.tools.readers._common import load_volume_case, read_volume

from .builders import blob, write_volume

AXES = [
    (perm, signs)
    for perm in itertools.permutations(range(3))
    for signs in itertools.product((1, -1), repeat=3)
]


@pytest.mark.parametrize(("perm", "signs"), AXES)
def test_nifti_orientation_matches_dicomorient(tmp_path: Path, perm, signs) -> None:
    rng = np.random.default_rng(0)
    data = rng.random((3, 4, 5)).astype(np.float32)
    direction = np.zeros((3, 3))
    for index_axis, physical in enumerate(perm):
        direction[physical, index_axis] = signs[index_axis]
    img = sitk.GetImageFromArray(data)
    img.SetDirection(tuple(direction.ravel()))
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(img, str(path))
    ours, oriented = read_volume(path)
    reference = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS"))
    assert oriented
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize(("x_sign", "lesion_side"), [(1.0, "right_half"), (-1.0, "left_half")])
def test_patient_left_is_the_image_right(tmp_path: Path, x_sign: float, lesion_side: str) -> None:
    """nibabel affines are RAS+: with +1 on x, voxel i grows toward the patient's right, so a
    lesion at low i is on the patient's LEFT and must land on the image's right half (the
    radiological view); with -1 the same voxels are on the patient's right."""
    data = np.full((20, 16, 10), 10, dtype=np.float32)  # (i, j, k) as stored
    data[2:5, 6:10, 4:6] = 500
    nib.save(nib.Nifti1Image(data, np.diag([x_sign, 1.0, 1.0, 1.0])), tmp_path / "v.nii.gz")
    vol, oriented = read_volume(tmp_path / "v.nii.gz")
    assert oriented and vol.shape == (10, 16, 20)
    columns = np.flatnonzero(vol.max(axis=(0, 1)) > 100)
    half = vol.shape[2] / 2
    assert (columns.min() >= half) if lesion_side == "right_half" else (columns.max() < half)
    # Anterior is at the top: +j runs anterior in RAS, so rows 6..9 become rows 6..9 from the
    # bottom (y grows posterior).
    rows = np.flatnonzero(vol.max(axis=(0, 2)) > 100)
    assert rows.tolist() == [6, 7, 8, 9]


def test_scaled_and_big_endian_nifti(tmp_path: Path) -> None:
    raw = np.arange(60, dtype=np.int16).reshape(5, 4, 3)
    img = nib.Nifti1Image(raw.astype(">i2"), np.eye(4))
    img.header.set_slope_inter(2.0, 10.0)
    nib.save(img, tmp_path / "scaled.nii")
    vol, _ = read_volume(tmp_path / "scaled.nii")
    reference = sitk.GetArrayFromImage(
        sitk.DICOMOrient(sitk.ReadImage(str(tmp_path / "scaled.nii")), "LPS")
    )
    np.testing.assert_allclose(vol, reference)
    assert vol.dtype == np.float32 and vol.max() == 59 * 2 + 10


def test_nifti2_is_refused_with_a_conversion_hint(tmp_path: Path) -> None:
    data = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)
    nib.save(nib.Nifti2Image(data, np.eye(4)), tmp_path / "two.nii")
    with pytest.raises(UnreadableInput, match=r"NIfTI-2.*NIfTI-1"):
        read_volume(tmp_path / "two.nii")


def test_nan_voxels_survive_to_the_check(tmp_path: Path) -> None:
    vol, _ = blob()
    vol[2, 3, 4] = np.nan
    path = write_volume(tmp_path / "nan.nii.gz", vol)
    assert np.isnan(read_volume(path)[0]).sum() == 1  # ITK alone would have made it 0
    with pytest.raises(UnreadableInput, match=r"nan\.nii\.gz.*NaN"):
        load_volume_case({"t1": path}, None)


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii"])
def test_truncated_nifti_is_unreadable(tmp_path: Path, name: str) -> None:
    path = write_volume(tmp_path / name, blob()[0])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnreadableInput, match=r"cut\.nii.*(truncated|re-download)"):
        read_volume(path)


def test_4d_is_refused_but_a_singleton_4th_axis_is_not(tmp_path: Path) -> None:
    data = np.ones((4, 5, 6, 3), dtype=np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "series.nii.gz")
    with pytest.raises(UnreadableInput, match="4D"):
        read_volume(tmp_path / "series.nii.gz")
    nib.save(nib.Nifti1Image(data[..., :1], np.eye(4)), tmp_path / "one.nii.gz")
    assert read_volume(tmp_path / "one.nii.gz")[0].shape == (6, 5, 4)


def test_2d_mha_is_unoriented(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(63, dtype=np.float32).reshape(9, 7)),
                    str(tmp_path / "p.mha"))  # fmt: skip
    image, oriented = read_volume(tmp_path / "p.mha")
    assert image.shape == (9, 7) and not oriented


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".nii"])
def test_other_formats_and_masks(tmp_path: Path, suffix: str) -> None:
    vol, mask = blob()
    image_path = write_volume(tmp_path / f"v{suffix}", vol, ras=True)
    mask_path = write_volume(tmp_path / f"m{suffix}", mask * 7, ras=True)
    case = load_volume_case({"t2": image_path}, mask_path)
    np.testing.assert_array_equal(case.images["t2"], vol)
    np.testing.assert_array_equal(case.mask, mask * 7)
    assert case.mask.dtype == np.uint8 and case.orientation_known


def test_mask_on_another_grid_names_the_mask(tmp_path: Path) -> None:
    image = write_volume(tmp_path / "v.nii.gz", blob()[0])
    small = write_volume(tmp_path / "v_seg.nii.gz", np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(UnreadableInput, match=r"v_seg\.nii\.gz: mask shape"):
        load_volume_case({"t1": image}, small)


def test_mask_labels_out_of_range_are_refused(tmp_path: Path) -> None:
    bad = write_volume(tmp_path / "m.nii.gz", np.full((3, 3, 3), 300, dtype=np.int16))
    with pytest.raises(UnreadableInput, match=r"0\.\.255"):
        read_volume(bad, mask=True)


@pytest.mark.slow
def test_brats_size_volume_matches_nibabel(tmp_path: Path) -> None:
    # Speed against nibabel is measured by scripts/bench_ingest.py, not by a timed test.
    data = (np.random.default_rng(0).random((240, 240, 155)) * 1000).astype(np.int16)
    path = tmp_path / "big.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])), path)
    volume, oriented = read_volume(path)
    theirs = np.asarray(nib.load(path).dataobj, dtype=np.float32)  # voxel order (i, j, k)
    assert oriented and volume.shape == (155, 240, 240)
    # The affine diag(-1, -1, 1) already runs i, j, k towards L, P, S: only the axis order
    # changes, to (z, y, x).
    assert np.array_equal(volume, theirs.transpose(2, 1, 0))
