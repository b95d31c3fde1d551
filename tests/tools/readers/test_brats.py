"""BraTS 2021-style and 2023+ case folders."""

from __future__ import annotations

import numpy as np
import pytest

from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers.brats import Brats2021Reader, Brats2023Reader

from .builders import SCALES, SHAPE, Sources, blob, claim_all, rel, write_volume

FOUR = (Modality.t1, Modality.t1ce, Modality.t2, Modality.flair)


def test_brats2021_case(src: Sources) -> None:
    src.brats2021(folder="BraTS2021_TrainingData")
    (case,), rejections, left = claim_all(Brats2021Reader(), src.root)
    assert not rejections and not left
    assert (case.source_format, case.dataset, case.subject_key) == (
        "brats2021",
        "BraTS2021",
        "BraTS2021_00000",
    )
    assert case.label is Diagnosis.glioma and case.modalities == FOUR
    assert case.mask_kind == "segmentation" and case.split_hint == "train"
    assert [p.name for p in case.files] == [
        f"BraTS2021_00000_{s}.nii.gz" for s in ("t1", "t1ce", "t2", "flair", "seg")
    ]
    loaded = case.load()
    assert loaded.orientation_known and loaded.is_volume
    assert list(loaded.images) == ["t1", "t1ce", "t2", "flair"]
    vol, mask = blob()
    for name, scale in SCALES.items():
        assert loaded.images[name].dtype.kind in "iuf"  # stored type kept (int16 here)
        np.testing.assert_allclose(loaded.images[name], vol * scale, rtol=1e-6)
    # Labels 1/2/4 become 1/2/3; the whole tumour is unchanged.
    assert loaded.mask.dtype == np.uint8 and set(np.unique(loaded.mask)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(loaded.mask > 0, mask > 0)
    assert loaded.mask_labels == {1: "necrotic_core", 2: "edema", 3: "enhancing"}


def test_lesion_on_the_patients_left_is_on_the_image_right(src: Sources) -> None:
    # Canonical x grows toward the patient's left; the files are stored RAS-flipped.
    src.brats2021(centre=(5, 8, 16))
    (case,), _, _ = claim_all(Brats2021Reader(), src.root)
    loaded = case.load()
    columns = np.flatnonzero(loaded.mask.any(axis=(0, 1)))
    assert columns.min() > SHAPE[2] / 2
    bright = np.flatnonzero(loaded.images["flair"].max(axis=(0, 1)) > 500)
    assert bright.min() > SHAPE[2] / 2


def test_missing_sequence_rejects_every_file_of_the_case(src: Sources) -> None:
    src.brats2021("BraTS2021_00001", skip=("t1ce",))
    src.brats2021("BraTS2021_00002")
    cases, rejections, left = claim_all(Brats2021Reader(), src.root)
    assert [c.subject_key for c in cases] == ["BraTS2021_00002"]
    assert len(rejections) == 4 and not left  # t1, t2, flair, seg
    assert all("lacks t1ce" in r.reason for r in rejections)


def test_case_without_seg_still_ingests(src: Sources) -> None:
    src.brats2021(seg=False)
    (case,), _, _ = claim_all(Brats2021Reader(), src.root)
    assert case.mask_kind is None and case.label is Diagnosis.glioma
    assert case.load().mask is None


def test_older_ids_and_flat_layout(src: Sources) -> None:
    vol, _ = blob()
    for seq in ("t1", "t1ce", "t2", "flair"):
        write_volume(src.path(f"flat/BraTS20_Training_001_{seq}.nii"), vol)
    (case,), _, _ = claim_all(Brats2021Reader(), src.root)
    assert (case.dataset, case.subject_key, case.split_hint) == (
        "BraTS20",
        "BraTS20_Training_001",
        "train",
    )


@pytest.mark.parametrize(
    ("tag", "label"),
    [
        ("GLI", Diagnosis.glioma),
        ("PED", Diagnosis.glioma),
        ("SSA", Diagnosis.glioma),
        ("MEN", Diagnosis.meningioma),
        ("MET", Diagnosis.metastasis),
    ],
)
def test_brats2023_tags(src: Sources, tag: str, label: Diagnosis) -> None:
    src.brats2023(f"BraTS-{tag}-00012-001")
    (case,), rejections, left = claim_all(Brats2023Reader(), src.root)
    assert not rejections and not left
    assert case.label is label and case.dataset == f"BraTS-{tag}"
    assert case.subject_key == f"BraTS-{tag}-00012"  # the time point is not the subject
    assert case.modalities == FOUR
    loaded = case.load()
    assert set(np.unique(loaded.mask)) == {0, 1, 2, 3}  # 2023 labels are kept as they are
    assert list(loaded.images) == ["t1", "t1ce", "t2", "flair"]
    np.testing.assert_allclose(loaded.images["flair"], blob()[0] * SCALES["flair"], rtol=1e-6)
    if tag == "PED":
        assert loaded.mask_labels[1] == "enhancing"
    else:
        assert loaded.mask_labels == {1: "necrotic_core", 2: "edema", 3: "enhancing"}


def test_brats2023_validation_case_without_seg(src: Sources) -> None:
    src.brats2023("BraTS-MET-00100-000", seg=False)
    (case,), _, _ = claim_all(Brats2023Reader(), src.root)
    assert case.label is Diagnosis.metastasis and case.load().mask is None


def test_readers_do_not_take_each_others_files(src: Sources) -> None:
    src.brats2021()
    src.brats2023()
    cases21, _, left21 = claim_all(Brats2021Reader(), src.root)
    cases23, _, left23 = claim_all(Brats2023Reader(), src.root)
    assert len(cases21) == len(cases23) == 1
    assert rel(src.root, left21) == rel(src.root, cases23[0].files)
    assert rel(src.root, left23) == rel(src.root, cases21[0].files)


def test_duplicate_sequence_is_rejected(src: Sources) -> None:
    folder = src.brats2021()
    write_volume(folder / "BraTS2021_00000_t1.nii", blob()[0])
    (case,), (rejection,), _ = claim_all(Brats2021Reader(), src.root)
    # Sorted order decides: the .nii is used, the .nii.gz twin rejected.
    assert case.files[0].name == "BraTS2021_00000_t1.nii"
    assert rejection.path.name == "BraTS2021_00000_t1.nii.gz"
    assert "duplicate of BraTS2021_00000_t1.nii" in rejection.reason
