"""Plain volumes with optional masks beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers.nifti import NiftiReader

from .builders import blob, claim_all, rel, write_volume

VOL, MASK = blob()


@pytest.mark.parametrize("suffix", ["_seg", "_mask", "_label", "-segmentation"])
def test_volume_with_mask(tmp_path: Path, suffix: str) -> None:
    write_volume(tmp_path / "scans" / "p01_FLAIR.nii.gz", VOL, ras=True)
    write_volume(tmp_path / "scans" / f"p01_FLAIR{suffix}.nii.gz", MASK, ras=True)
    (case,), rejections, left = claim_all(NiftiReader(), tmp_path)
    assert not rejections and not left
    assert case.modalities == (Modality.flair,) and case.mask_kind == "segmentation"
    assert case.label is None  # no class folder: slices get "tumor" from the mask later
    assert case.subject_key == "scans/p01_FLAIR" and case.dataset == "scans"
    loaded = case.load()
    np.testing.assert_allclose(loaded.images["flair"], VOL)
    np.testing.assert_array_equal(loaded.mask, MASK)


@pytest.mark.parametrize(
    ("name", "modality"),
    [
        ("a_t1.nii", Modality.t1),
        ("a_T1c.nii", Modality.t1ce),
        ("a_t1ce.nii", Modality.t1ce),
        ("a_t2.nrrd", Modality.t2),
        ("flair_a.mha", Modality.flair),
        ("scan.nii.gz", None),
    ],
)
def test_modality_from_file_name(tmp_path: Path, name: str, modality) -> None:
    write_volume(tmp_path / name, VOL)
    (case,), _, _ = claim_all(NiftiReader(), tmp_path)
    assert case.modalities == (modality,) and case.label is None and case.mask_kind is None
    assert list(case.load().images) == [modality.value if modality else "unknown"]


def test_sequences_of_one_subject_form_one_case(tmp_path: Path) -> None:
    for seq, scale in (("FLAIR", 2), ("T1", 1), ("T1GD", 3)):
        write_volume(tmp_path / "glioma" / f"UCSF-0004_{seq}.nii.gz", VOL * scale)
    write_volume(tmp_path / "glioma" / "UCSF-0004_seg.nii.gz", MASK)
    write_volume(tmp_path / "glioma" / "other_t2.nii.gz", VOL)
    cases, rejections, _ = claim_all(NiftiReader(), tmp_path)
    assert not rejections
    multi = next(c for c in cases if len(c.modalities) > 1)
    assert multi.modalities == (Modality.t1, Modality.t1ce, Modality.flair)
    assert multi.label is Diagnosis.glioma and multi.subject_key == "glioma/UCSF-0004"
    loaded = multi.load()
    assert list(loaded.images) == ["t1", "t1ce", "flair"]
    np.testing.assert_allclose(loaded.images["t1ce"], VOL * 3)
    np.testing.assert_array_equal(loaded.mask, MASK)
    single = next(c for c in cases if len(c.modalities) == 1)
    assert single.modalities == (Modality.t2,) and single.mask_kind is None


def test_mask_without_volume_is_rejected(tmp_path: Path) -> None:
    write_volume(tmp_path / "lost_seg.nii.gz", MASK)
    cases, (rejection,), left = claim_all(NiftiReader(), tmp_path)
    assert not cases and not left
    assert "mask without a matching volume" in rejection.reason


def test_mhd_claims_its_raw_file(tmp_path: Path) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(VOL), str(tmp_path / "vol.mhd"))
    (case,), _, left = claim_all(NiftiReader(), tmp_path)
    assert not left and rel(tmp_path, case.files) == ["vol.mhd", "vol.raw"]
    np.testing.assert_allclose(case.load().images["unknown"], VOL)


def test_bad_volumes_fail_at_load_naming_the_file(tmp_path: Path) -> None:
    nan = VOL.copy()
    nan[1, 1, 1] = np.nan
    write_volume(tmp_path / "nan.nii.gz", nan)
    cut = write_volume(tmp_path / "cut.nii.gz", VOL)
    cut.write_bytes(cut.read_bytes()[:200])
    (tmp_path / "junk.mha").write_bytes(b"not a metaimage")
    cases, _, _ = claim_all(NiftiReader(), tmp_path)
    messages = {}
    for case in cases:
        with pytest.raises(UnreadableInput) as info:
            case.load()
        messages[case.files[0].name] = str(info.value)
    assert "NaN" in messages["nan.nii.gz"]
    assert "truncated" in messages["cut.nii.gz"]
    assert "junk.mha" in messages["junk.mha"] and "cannot read" in messages["junk.mha"]
