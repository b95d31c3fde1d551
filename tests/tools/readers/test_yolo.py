"""YOLO detection and segmentation label sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroonco.schemas.vocabulary import Diagnosis
from neuroonco.tools.readers.yolo import YoloReader

from .builders import blob, claim_all, rel, write_image

IMAGE = blob((40, 50), radius=8)[0] / 3  # height 40, width 50


def _yolo(root: Path, labels: dict[str, str], *, yaml: str | None = None, images=None):
    """Write ``images/<stem>.jpg`` for each label file ``labels/<stem>.txt`` (or ``images``)."""
    for name in images if images is not None else labels:
        write_image(root / name.replace("labels", "images").replace(".txt", ".jpg"), IMAGE)
    for name, text in labels.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if yaml is not None:
        (root / "data.yaml").write_text(yaml)
    return claim_all(YoloReader(), root)


def test_polygons_become_a_segmentation_mask(tmp_path: Path) -> None:
    square = "0 0.2 0.25 0.6 0.25 0.6 0.75 0.2 0.75\n"
    (case,), rejections, left = _yolo(
        tmp_path, {"labels/a.txt": square}, yaml="names: [Glioma, Meningioma]\n"
    )
    assert not rejections and not left  # data.yaml consumed too
    assert case.label is Diagnosis.glioma and case.mask_kind == "segmentation"
    assert rel(tmp_path, case.files) == ["images/a.jpg", "labels/a.txt"]
    mask = case.load().mask
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max()) == (10, 30) and (cols.min(), cols.max()) == (10, 30)


def test_boxes_become_box_masks(tmp_path: Path) -> None:
    (case,), _, _ = _yolo(
        tmp_path,
        {"train/labels/b.txt": "1 0.5 0.5 0.4 0.5\n"},
        yaml="names:\n  0: glioma_tumor\n  1: pituitary\n",
    )
    assert case.label is Diagnosis.pituitary_tumor and case.mask_kind == "box"
    assert case.split_hint == "train"
    mask = case.load().mask
    assert mask.dtype == np.uint8 and mask.sum() == 20 * 20
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 29, 15, 34)


def test_largest_object_gives_the_class(tmp_path: Path) -> None:
    rows = "0 0.1 0.1 0.1 0.1\n2 0.6 0.6 0.5 0.5\n1 0.9 0.9 0.1 0.1\n"
    (case,), _, _ = _yolo(
        tmp_path, {"labels/c.txt": rows}, yaml="names: [glioma, meningioma, pituitary]\n"
    )
    assert case.label is Diagnosis.pituitary_tumor
    assert case.load().mask.sum() > 0.25 * 40 * 50  # every object is in the one mask


def test_negative_class_objects_are_not_lesions(tmp_path: Path) -> None:
    (case,), _, _ = _yolo(
        tmp_path, {"labels/d.txt": "0 0.5 0.5 0.9 0.9\n"}, yaml="names: [no_tumor, tumor]\n"
    )
    assert case.label is Diagnosis.no_tumor and case.mask_kind is None
    assert case.load().mask is None


@pytest.mark.parametrize(
    ("yaml", "label"),
    [("names: [negative, glioma]\n", Diagnosis.no_tumor), ("names: [glioma]\n", None)],
)
def test_empty_label_file(tmp_path: Path, yaml: str, label) -> None:
    (case,), _, _ = _yolo(tmp_path, {"labels/e.txt": ""}, yaml=yaml)
    assert case.label is label and case.load().mask is None


def test_image_without_label_file_is_background(tmp_path: Path) -> None:
    cases, _, _ = _yolo(
        tmp_path,
        {"labels/f.txt": "0 0.5 0.5 0.2 0.2\n"},
        images=["labels/f.txt", "labels/g.txt"],
        yaml="names: [notumor, glioma]\n",
    )
    labels = {c.files[0].name: (c.label, len(c.files)) for c in cases}
    assert labels == {"f.jpg": (Diagnosis.no_tumor, 2), "g.jpg": (Diagnosis.no_tumor, 1)}


def test_class_names_unknown_or_odd_still_mean_a_lesion(tmp_path: Path) -> None:
    cases, _, _ = _yolo(
        tmp_path,
        {"a/labels/h.txt": "0 0.5 0.5 0.2 0.2\n", "b/labels/i.txt": "0 0.5 0.5 0.2 0.2\n"},
    )
    (tmp_path / "b" / "data.yaml").write_text("names: ['positive']\n")
    cases_b, _, _ = claim_all(YoloReader(), tmp_path / "b")
    assert [c.label for c in cases] == [Diagnosis.tumor, Diagnosis.tumor]
    assert cases_b[0].label is Diagnosis.tumor


def test_images_split_folders_and_classes_txt(tmp_path: Path) -> None:
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val" / "j.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (tmp_path / "labels" / "classes.txt").write_text("glioma\nmeningioma\n")
    write_image(tmp_path / "images" / "val" / "j.png", IMAGE)
    (case,), rejections, left = claim_all(YoloReader(), tmp_path)
    assert not rejections and not left
    assert case.label is Diagnosis.meningioma and case.split_hint == "val"


def test_bad_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    cases, rejections, _ = _yolo(
        tmp_path,
        {
            "labels/bad_row.txt": "0 0.5 0.5\n",
            "labels/pixels.txt": "0 120 80 30 30\n",
            "labels/nan.txt": "0 nan 0.5 0.2 0.2\n",
            "labels/unknown_id.txt": "5 0.5 0.5 0.2 0.2\n",
            "labels/orphan.txt": "0 0.5 0.5 0.2 0.2\n",
        },
        images=[
            "labels/bad_row.txt",
            "labels/pixels.txt",
            "labels/nan.txt",
            "labels/unknown_id.txt",
        ],
        yaml="names: [glioma]\n",
    )
    assert not cases
    reasons = {r.path.relative_to(tmp_path).as_posix(): r.reason for r in rejections}
    assert set(reasons) == {
        "images/bad_row.jpg",
        "labels/bad_row.txt",
        "images/pixels.jpg",
        "labels/pixels.txt",
        "images/nan.jpg",
        "labels/nan.txt",
        "images/unknown_id.jpg",
        "labels/unknown_id.txt",
        "labels/orphan.txt",
    }
    assert "line 1: expected 'class xc yc w h'" in reasons["labels/bad_row.txt"]
    assert "normalised to 0..1" in reasons["labels/pixels.txt"]
    assert "normalised to 0..1" in reasons["labels/nan.txt"]
    assert "class ids [5]" in reasons["images/unknown_id.jpg"]
    assert "without an image" in reasons["labels/orphan.txt"]


def test_unparseable_yaml_is_rejected(tmp_path: Path) -> None:
    cases, rejections, _ = _yolo(
        tmp_path, {"labels/k.txt": "0 0.5 0.5 0.2 0.2\n"}, yaml="names: [unclosed\n"
    )
    assert [r.path.name for r in rejections] == ["data.yaml"]
    assert cases[0].label is Diagnosis.tumor  # still ingested, without class names
