"""2D image/mask pairs in the usual spellings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis
from neuroonco.tools.readers.base import UNKNOWN_CHANNEL
from neuroonco.tools.readers.pairs import ImageMaskPairReader

from .builders import blob, claim_all, rel, write_image

IMAGE, MASK = blob((24, 32), centre=(8, 20), radius=4)
IMAGE = IMAGE / 3


def _pairs(root: Path, layout: dict[str, np.ndarray]):
    for name, array in layout.items():
        write_image(root / name, array)
    return claim_all(ImageMaskPairReader(), root)


@pytest.mark.parametrize(
    ("image", "masks"),
    [
        ("images/case_001.png", ["masks/case_001.png"]),
        ("data/images/train/c1.png", ["data/masks/train/c1_mask.png"]),
        ("TCGA_CS_4941/TCGA_CS_4941_1.tif", ["TCGA_CS_4941/TCGA_CS_4941_1_mask.tif"]),
        ("benign (3).png", ["benign (3)_mask.png", "benign (3)_mask_1.png"]),
        ("scans/brain (7).png", ["scans/mask (7).png"]),
        ("imgs/brain (7).png", ["mask/mask (7).png"]),
    ],
)
def test_pairing_styles(tmp_path: Path, image: str, masks: list[str]) -> None:
    layout = {image: IMAGE, **{m: MASK * 255 for m in masks}}
    layout["unrelated/other.png"] = IMAGE  # left alone for the class-folder reader
    (case,), rejections, left = _pairs(tmp_path, layout)
    assert not rejections
    assert rel(tmp_path, left) == ["unrelated/other.png"]
    assert rel(tmp_path, case.files[:1]) == [image]
    assert rel(tmp_path, case.files[1:]) == sorted(masks)
    assert case.label is Diagnosis.tumor and case.mask_kind == "segmentation"
    loaded = case.load()
    np.testing.assert_array_equal(loaded.mask, MASK)
    assert loaded.images[UNKNOWN_CHANNEL].shape == MASK.shape


def test_several_masks_are_merged(tmp_path: Path) -> None:
    second = np.zeros_like(MASK)
    second[1:3, 1:3] = 1
    (case,), _, _ = _pairs(
        tmp_path, {"a.png": IMAGE, "a_mask.png": MASK * 255, "a_mask_1.png": second}
    )
    np.testing.assert_array_equal(case.load().mask, MASK | second)


def test_label_from_class_folder_else_from_mask(tmp_path: Path) -> None:
    cases, _, _ = _pairs(
        tmp_path,
        {
            "glioma/images/g.png": IMAGE,
            "glioma/masks/g.png": MASK * 255,
            "slices/x.png": IMAGE,
            "slices/x_mask.png": np.zeros_like(MASK),
            "slices/y.png": IMAGE,
            "slices/y_mask.png": MASK,  # a 0/1 mask
        },
    )
    labels = {c.files[0].name: c.label for c in cases}
    assert labels == {
        "g.png": Diagnosis.glioma,
        "x.png": Diagnosis.no_tumor,
        "y.png": Diagnosis.tumor,
    }
    empty = next(c for c in cases if c.files[0].name == "x.png").load()
    assert empty.mask is not None and not empty.mask.any()


def test_mask_without_image_is_rejected(tmp_path: Path) -> None:
    cases, rejections, left = _pairs(
        tmp_path,
        {"lone_mask.png": MASK * 255, "images/a.png": IMAGE, "masks/b.png": MASK * 255},
    )
    assert not cases
    assert rel(tmp_path, (r.path for r in rejections)) == ["lone_mask.png", "masks/b.png"]
    assert all("mask without a matching image" in r.reason for r in rejections)
    assert rel(tmp_path, left) == ["images/a.png"]


def test_names_that_merely_look_like_masks_stay_images(tmp_path: Path) -> None:
    _, rejections, left = _pairs(tmp_path, {"brain_seg.png": IMAGE, "seg_001.png": IMAGE})
    assert not rejections and len(left) == 2


def test_mask_of_another_shape_fails_at_load(tmp_path: Path) -> None:
    (case,), _, _ = _pairs(tmp_path, {"m.png": IMAGE, "m_mask.png": np.ones((5, 5)) * 255})
    with pytest.raises(UnreadableInput, match=r"m_mask\.png: mask shape \(5, 5\)"):
        case.load()


def test_a_picture_or_probability_map_is_not_a_mask(tmp_path: Path) -> None:
    import nibabel as nib
    from nibabel.testing import data_path

    vol = np.asarray(nib.load(f"{data_path}/anatomical.nii").dataobj).astype(np.float32)
    picture = (vol[:, :, 12].T / vol.max() * 255).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:41, :33]
    probability = (255 * np.exp(-((yy - 20) ** 2 + (xx - 16) ** 2) / 60.0)).astype(np.uint8)
    binary = ((probability > 128) * 255).astype(np.uint8)
    for name, mask in (("photo", picture), ("prob", probability), ("ok", binary)):
        folder = tmp_path / name
        write_image(folder / "images" / "a.png", picture)
        write_image(folder / "masks" / "a.jpg", mask)  # lossy: compression noise on the edges
    loaded = {}
    for name in ("photo", "prob", "ok"):
        (case,), _, _ = claim_all(ImageMaskPairReader(), tmp_path / name)
        try:
            loaded[name] = case.load()
        except UnreadableInput as exc:
            loaded[name] = str(exc)
    assert "a.jpg: not a label map" in loaded["photo"]
    assert "a.jpg: not a label map" in loaded["prob"]
    np.testing.assert_array_equal(loaded["ok"].mask, binary > 0)
