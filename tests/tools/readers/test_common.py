"""Path-derived hints, modality parsing and 2D image/mask reading shared by the readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers._common import (
    dataset_name,
    folder_label,
    modality_from_text,
    read_image_2d,
    read_mask_2d,
    split_hint,
    split_of,
    strip_suffix,
    subject_from_path,
)

from .builders import write_image


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AX T1 POST GD", Modality.t1ce),
        ("T1+C", Modality.t1ce),
        ("t1 with contrast", Modality.t1ce),
        ("sub-01_T1w", Modality.t1),
        ("case_t1c", Modality.t1ce),
        ("Ax T2 FLAIR", Modality.flair),
        ("BraTS-x-t2f", Modality.flair),
        ("scan_T2", Modality.t2),
        ("t2w_tse", Modality.t2),
        ("SAG T1 MPRAGE", Modality.t1),
        ("AX T2* GRE", None),
        ("DWI b1000", None),
        ("localizer", None),
        ("", None),
    ],
)
def test_modality_from_text(text: str, expected: Modality | None) -> None:
    assert modality_from_text(text) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Training", "train"),
        ("train", "train"),
        ("MICCAI_BraTS2020_TrainingData", "train"),
        ("Testing", "test"),
        ("valid", "val"),
        ("BraTS2021_ValidationData", "val"),
        ("glioma", None),
        ("images", None),
    ],
)
def test_split_of(name: str, expected: str | None) -> None:
    assert split_of(name) == expected


def test_path_hints(tmp_path: Path) -> None:
    root = tmp_path / "brain-tumor-mri"
    image = root / "Training" / "glioma_tumor" / "images" / "Tr-gl_0001.jpg"
    assert folder_label(root, image) is Diagnosis.glioma
    assert split_hint(root, image) == "train"
    assert dataset_name(root, image) == "brain-tumor-mri"  # "Training" is no collection name
    assert dataset_name(tmp_path, image) == "brain-tumor-mri"
    assert subject_from_path(root, image) == "Training/glioma_tumor/images/Tr-gl_0001"
    # The root's own name never labels its files.
    assert folder_label(tmp_path / "glioma", tmp_path / "glioma" / "x.png") is None


def test_subject_is_the_patient_folder_when_files_carry_its_name(tmp_path: Path) -> None:
    lgg = tmp_path / "kaggle_3m" / "TCGA_CS_4941_19960909" / "TCGA_CS_4941_19960909_12.tif"
    assert subject_from_path(tmp_path, lgg) == "kaggle_3m/TCGA_CS_4941_19960909"
    # ...but a class folder is never a subject, even when file names repeat it.
    kaggle = tmp_path / "glioma" / "glioma_0001.jpg"
    assert subject_from_path(tmp_path, kaggle) == "glioma/glioma_0001"


def test_strip_suffix_handles_double_extensions() -> None:
    assert strip_suffix(Path("a/BraTS2021_00000_t1.nii.gz")) == "BraTS2021_00000_t1"
    assert strip_suffix(Path("b.mha")) == "b"
    assert strip_suffix(Path("c.png")) == "c"


def test_rgb_image_becomes_luminance(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    gray = read_image_2d(tmp_path / "red.png")
    assert gray.dtype == np.float32 and gray.shape == (4, 6)
    np.testing.assert_allclose(gray, 0.299 * 200, rtol=1e-5)


def test_16bit_png_keeps_its_range(tmp_path: Path) -> None:
    deep = np.arange(24, dtype=np.uint16).reshape(4, 6) * 2000
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_image_2d(tmp_path / "deep.png"), deep.astype(np.float32))


def test_mask_binarisation(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2, 100], [127, 128, 200, 255]], dtype=np.uint8)
    # A 0..255 mask: only > 127 is lesion (anti-aliased edges drop out).
    write_image(tmp_path / "wide.png", values)
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "wide.png"), [[0, 0, 0, 0], [0, 1, 1, 1]])
    # A 0/1 mask or a small label map (sub-regions): labels kept.
    write_image(tmp_path / "unit.png", np.array([[0, 1], [2, 0]]))
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "unit.png"), [[0, 1], [2, 0]])
    # Values above the label range but not a 0..255 mask: anything non-zero.
    write_image(tmp_path / "ids.png", np.array([[0, 9], [40, 0]]))
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "ids.png"), [[0, 1], [1, 0]])
    # Lossy masks always use the mid threshold, so compression noise is not lesion.
    write_image(tmp_path / "lossy.jpg", np.full((8, 8), 3))
    assert not read_mask_2d(tmp_path / "lossy.jpg").any()


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(UnreadableInput, match=r"broken\.jpg.*cannot decode"):
        read_image_2d(bad)
    good = write_image(tmp_path / "cut.png", np.arange(64 * 64).reshape(64, 64) % 251)
    good.write_bytes(good.read_bytes()[:-60])  # truncated: end of the data stream missing
    with pytest.raises(UnreadableInput, match=r"cut\.png"):
        read_image_2d(good)
