"""Geometry as the file says, on nibabel's real test volumes: 2D NIfTI orientation, sagittal and
coronal stacks, masks placed by their own header, and masks that are not label maps."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from neuroonco.errors import UnreadableInput
from neuroonco.tools.readers._common import load_volume_case, plane_view, read_volume

ANATOMICAL = Path(data_path) / "anatomical.nii"  # a real 2 mm brain, 33 x 41 x 25, LAS
STANDARD = Path(data_path) / "standard.nii.gz"  # a real 0/1 uint8 volume


def _anat() -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(ANATOMICAL)
    return np.asarray(img.dataobj).astype(np.int16), img.affine


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _lesion(shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 block in voxel space (i, j, k), off-centre so a shift or flip shows."""
    mask = np.zeros(shape, np.uint8)
    mask[6:12, 10:18, 8:14] = 1
    return mask


def test_2d_nifti_follows_its_header(tmp_path: Path) -> None:
    data, affine = _anat()
    volume, _ = read_volume(ANATOMICAL)
    z = 12
    slab = affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, z], [0, 0, 0, 1]])
    # The same axial slice stored as is, and stored flipped with a header saying so.
    flip_i = slab @ np.array([[-1, 0, 0, 32], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    plain = _save(tmp_path / "plain.nii", data[:, :, z], slab)
    flipped = _save(tmp_path / "flipped.nii", data[::-1, :, z], flip_i)
    for path in (plain, flipped):
        image, oriented = read_volume(path)
        assert oriented
        np.testing.assert_array_equal(image, volume[z])  # the 3D file's own axial slice
    loaded = load_volume_case({"t1": plain}, None)
    assert loaded.plane == "axial" and loaded.orientation_known and loaded.images["t1"].ndim == 2


def test_2d_sagittal_nifti_is_a_sagittal_image(tmp_path: Path) -> None:
    data, affine = _anat()
    volume, _ = read_volume(ANATOMICAL)
    x = 16
    # The in-plane axes of a sagittal slice are j (A) and k (S); its normal is i.
    sag = affine @ np.array([[0, 0, 1, x], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    path = _save(tmp_path / "sag.nii", np.ascontiguousarray(data[x]), sag)
    loaded = load_volume_case({"t1": path}, None)
    assert loaded.plane == "sagittal"
    # LAS: i runs toward the patient's left, as the LPS x axis does.
    np.testing.assert_array_equal(loaded.images["t1"], plane_view(volume, "sagittal")[x])


def _restack(data: np.ndarray, affine: np.ndarray, order: tuple[int, int, int]):
    """The same voxels stored with index axes permuted (a sagittal or coronal acquisition)."""
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[:, list(order)]
    return np.ascontiguousarray(data.transpose(order)), affine @ perm


def test_isotropic_sagittal_stack_is_resliced_axially_exactly(tmp_path: Path) -> None:
    data, affine = _anat()
    stored, aff = _restack(data, affine, (1, 2, 0))  # stored (A, S, L): sagittal slices
    path = _save(tmp_path / "sag_iso.nii.gz", stored, aff)
    loaded = load_volume_case({"t1": path}, None)
    assert loaded.plane == "axial" and loaded.pixel_spacing == (2.0, 2.0)
    np.testing.assert_array_equal(loaded.images["t1"], read_volume(ANATOMICAL)[0])


@pytest.mark.parametrize(("order", "axis", "plane"), [((1, 2, 0), 0, "sagittal"),
                                                        ((0, 2, 1), 1, "coronal")])  # fmt: skip
def test_thick_stack_is_sliced_in_its_own_plane(tmp_path: Path, order, axis, plane) -> None:
    data, affine = _anat()
    # Every 4th slice along i (sagittal) or j (coronal), 8 mm apart: a thick-slice acquisition.
    keep = [slice(None)] * 3
    keep[axis] = slice(None, None, 4)
    thick = data[tuple(keep)]
    scale = np.eye(4)
    scale[axis, axis] = 4
    stored, aff = _restack(thick, affine @ scale, order)
    path = _save(tmp_path / f"{plane}.nii.gz", stored, aff)
    mask = _save(tmp_path / f"{plane}_seg.nii.gz", (stored > np.percentile(stored, 95)).astype(
        np.uint8), aff)  # fmt: skip
    loaded = load_volume_case({"t2": path}, mask)
    assert loaded.plane == plane
    n = thick.shape[axis]
    image = loaded.images["t2"]
    # Not thin fake axial images: one slice per acquired slice, full in-plane size.
    assert image.shape[0] == n and min(image.shape[1:]) >= 25
    assert loaded.pixel_spacing == (2.0, 2.0)
    # The same voxels as the original file's LPS volume at every 4th x (LAS: i runs to L) or
    # every 4th y (j runs to A, y to P: 41 rows, so the kept ones are 0, 4, ..., 40 too).
    full, _ = read_volume(ANATOMICAL)
    kept = full[:, :, ::4] if plane == "sagittal" else full[:, ::4, :]
    np.testing.assert_array_equal(image, plane_view(kept, plane))
    # Superior at the top: the first row of every slice is the volume's highest z.
    top = kept[-1]  # (y, x)
    np.testing.assert_array_equal(image[:, 0, :], top.T if plane == "sagittal" else top)
    assert loaded.mask.shape == image.shape


def _mask_case(tmp_path: Path, mask: np.ndarray, affine: np.ndarray, name: str = "m_seg.nii.gz"):
    data, anat_affine = _anat()
    image = _save(tmp_path / "m.nii.gz", data, anat_affine)
    return image, _save(tmp_path / name, mask, affine)


def test_mask_is_placed_by_its_header(tmp_path: Path) -> None:
    data, affine = _anat()
    aligned = _lesion(data.shape)
    expected = load_volume_case({"t1": _save(tmp_path / "a.nii.gz", data, affine)},
                                _save(tmp_path / "a_seg.nii.gz", aligned, affine)).mask  # fmt: skip
    # Voxels moved 5 along i, header moved back by 5 voxels (10 mm): the same place.
    moved = np.roll(aligned, 5, axis=0)
    shift = affine.copy()
    shift[:3, 3] -= 5 * affine[:3, 0]
    image, mask = _mask_case(tmp_path, moved, shift)
    np.testing.assert_array_equal(load_volume_case({"t1": image}, mask).mask, expected)
    # Twice the resolution (1 mm voxels), same physical extent: resampled onto the 2 mm grid.
    fine = aligned.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    half = affine @ np.diag([0.5, 0.5, 0.5, 1.0])
    half[:3, 3] = affine[:3, 3] - 0.25 * affine[:3, :3].sum(axis=1)  # voxel centres
    image, mask = _mask_case(tmp_path, fine, half, "fine_seg.nii.gz")
    np.testing.assert_array_equal(load_volume_case({"t1": image}, mask).mask, expected)


def test_mask_outside_its_image_is_refused(tmp_path: Path) -> None:
    data, affine = _anat()
    far = affine.copy()
    far[:3, 3] += [0.0, 0.0, 300.0]  # 300 mm above the head
    image, mask = _mask_case(tmp_path, _lesion(data.shape), far)
    with pytest.raises(UnreadableInput, match=r"m_seg\.nii\.gz: 100% of the mask's lesion lies "
                       r"outside its image"):  # fmt: skip
        load_volume_case({"t1": image}, mask)


def test_origin_30mm_away_is_not_measured_as_aligned(tmp_path: Path) -> None:
    data, affine = _anat()
    aligned = _lesion(data.shape)
    moved = affine.copy()
    moved[:3, 3] += 30 * affine[:3, 1] / np.linalg.norm(affine[:3, 1])  # 30 mm anterior
    image, mask = _mask_case(tmp_path, aligned, moved)
    placed = load_volume_case({"t1": image}, mask).mask
    plain = load_volume_case({"t1": image}, _save(tmp_path / "p_seg.nii.gz", aligned, affine)).mask
    # 30 mm at 2 mm voxels = 15 rows toward anterior (the top of an axial slice).
    rows_placed = np.flatnonzero(placed.any(axis=(0, 2)))
    rows_plain = np.flatnonzero(plain.any(axis=(0, 2)))
    assert rows_placed.min() == rows_plain.min() - 15 and placed.sum() == plain.sum()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda d: (d / d.max()).astype(np.float32), "fractional values"),  # probability map
        (lambda d: d.astype(np.int16), "outside 0..255"),  # the image itself as its mask
        (lambda d: (d * (250.0 / d.max())).astype(np.uint8), "distinct non-zero values"),
    ],
)
def test_mask_that_is_not_a_label_map_is_refused(tmp_path: Path, make, why: str) -> None:
    data, affine = _anat()
    image, mask = _mask_case(tmp_path, make(data.astype(np.float64)), affine)
    with pytest.raises(UnreadableInput, match=rf"m_seg\.nii\.gz: not a label map.*{why}"):
        load_volume_case({"t1": image}, mask)


def test_label_volume_is_not_an_image() -> None:
    # standard.nii.gz is a real 0/1 volume: read as an MR image it would be a fake slice.
    with pytest.raises(UnreadableInput, match="label map"):
        load_volume_case({"unknown": STANDARD}, None)


def test_oblong_pixels_are_resampled_square_at_the_finer_spacing(tmp_path: Path) -> None:
    data, affine = _anat()
    # The same brain with 3 mm between sagittal planes (ratio 1.5: still sliced axially).
    stretched = affine @ np.diag([1.5, 1.0, 1.0, 1.0])
    path = _save(tmp_path / "oblong.nii.gz", data, stretched)
    mask = _save(tmp_path / "oblong_seg.nii.gz", _lesion(data.shape), stretched)
    loaded = load_volume_case({"t1": path}, mask)
    assert loaded.plane == "axial" and loaded.pixel_spacing == (2.0, 2.0)
    # 33 columns of 3 mm become 50 (49.5) columns of 2 mm; rows and slices are unchanged.
    assert loaded.images["t1"].shape == (25, 41, 50) and loaded.mask.shape == (25, 41, 50)
    # The lesion keeps its physical width: 6 planes x 3 mm = 18 mm = 9 columns of 2 mm.
    cols = np.flatnonzero(loaded.mask.any(axis=(0, 1)))
    assert 8 <= len(cols) <= 10 and set(np.unique(loaded.mask)) == {0, 1}


def test_sitk_case_gives_a_dicom_style_series_its_plane() -> None:
    import SimpleITK as sitk

    from neuroonco.tools.readers._common import sitk_case

    img = sitk.ReadImage(str(ANATOMICAL))
    thick = img[::4, :, :]  # every 4th sagittal plane, as a thick sagittal series would be
    loaded = sitk_case(thick, "t2", ANATOMICAL)
    assert loaded.plane == "sagittal" and loaded.images["t2"].shape == (9, 25, 41)
    full = sitk_case(img, "t2", ANATOMICAL)
    assert full.plane == "axial"
    np.testing.assert_array_equal(full.images["t2"], read_volume(ANATOMICAL)[0])
