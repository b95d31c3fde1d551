"""Class folders of 2D images (Kaggle layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis
from neuroonco.tools.readers.base import UNKNOWN_CHANNEL
from neuroonco.tools.readers.class_folder import ClassFolderReader

from .builders import blob, claim_all, write_image

IMAGE = blob((32, 40), radius=6)[0] / 3


@pytest.mark.parametrize(
    ("folder", "label", "split"),
    [
        ("Training/glioma", Diagnosis.glioma, "train"),
        ("Testing/notumor", Diagnosis.no_tumor, "test"),
        ("train/glioma_tumor", Diagnosis.glioma, "train"),
        ("val/meningioma_tumor", Diagnosis.meningioma, "val"),
        ("pituitary_tumor", Diagnosis.pituitary_tumor, None),
        ("no_tumor", Diagnosis.no_tumor, None),
        ("yes", Diagnosis.tumor, None),
        ("no", Diagnosis.no_tumor, None),
        ("Glioma", Diagnosis.glioma, None),
        ("brain_tumor", Diagnosis.tumor, None),
        ("normal", Diagnosis.no_tumor, None),
        ("healthy", Diagnosis.no_tumor, None),
        ("Brain Tumor Data Set/Healthy", Diagnosis.no_tumor, None),
        ("unsorted", None, None),
    ],
)
def test_label_and_split_from_folders(tmp_path: Path, folder: str, label, split) -> None:
    write_image(tmp_path / folder / "Y1.jpg", IMAGE)
    (case,), rejections, left = claim_all(ClassFolderReader(), tmp_path)
    assert not rejections and not left
    assert case.label is label and case.split_hint == split
    assert case.subject_key == f"{folder}/Y1"
    assert case.modalities == (None,) and case.mask_kind is None


def test_loads_grayscale_float_without_mask(tmp_path: Path) -> None:
    write_image(tmp_path / "yes" / "rgb.png", IMAGE, mode="RGB")
    (case,), _, _ = claim_all(ClassFolderReader(), tmp_path)
    loaded = case.load()
    assert list(loaded.images) == [UNKNOWN_CHANNEL] and loaded.mask is None
    pixels = loaded.images[UNKNOWN_CHANNEL]
    assert pixels.dtype == np.float32 and pixels.shape == (32, 40)
    np.testing.assert_allclose(pixels, np.clip(IMAGE, 0, 255).astype(np.uint8), atol=0.01)
    assert not loaded.orientation_known


def test_dataset_is_the_top_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "brain_mri" / "Training" / "glioma" / "a.png", IMAGE)
    write_image(tmp_path / "Training" / "glioma" / "b.png", IMAGE)
    cases, _, _ = claim_all(ClassFolderReader(), tmp_path)
    assert {c.files[0].name: c.dataset for c in cases} == {
        "a.png": "brain_mri",
        "b.png": tmp_path.name,
    }


def test_corrupt_and_blank_images_fail_at_load(tmp_path: Path) -> None:
    (tmp_path / "no").mkdir()
    (tmp_path / "no" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 garbage")
    write_image(tmp_path / "no" / "blank.png", np.zeros((8, 8)))
    cases, _, _ = claim_all(ClassFolderReader(), tmp_path)
    errors = {}
    for case in cases:
        with pytest.raises(UnreadableInput) as info:
            case.load()
        errors[case.files[0].name] = str(info.value)
    assert "cannot decode" in errors["broken.jpg"]
    assert "constant" in errors["blank.png"]
