"""The Decathlon / nnU-Net layout, built from nibabel's real test volumes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from neuroonco.ingest import ingest, slice_rows
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.store import connect
from neuroonco.tools.readers._common import read_volume
from neuroonco.tools.readers.discover import discover
from neuroonco.tools.readers.msd import MsdReader

from .builders import claim_all, rel

ANATOMICAL = Path(data_path) / "anatomical.nii"
EXAMPLE_4D = Path(data_path) / "example4d.nii.gz"  # a real 4D EPI file: 2 volumes
SEQUENCES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
MSD_JSON = {
    "name": "BRATS",
    "description": "Gliomas segmentation tumour and oedema in on brain images",
    "tensorImageSize": "4D",
    "modality": SEQUENCES,
    "labels": {
        "0": "background",
        "1": "edema",
        "2": "non-enhancing tumor",
        "3": "enhancing tumour",
    },
    "numTraining": 1,
    "training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}],
    "test": ["./imagesTs/BRATS_002.nii.gz"],
}


def _anat() -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(ANATOMICAL)
    return np.asarray(img.dataobj).astype(np.float32), img.affine


def _channels(data: np.ndarray) -> list[np.ndarray]:
    """Four distinct sequences of one real brain (different contrasts of the same anatomy)."""
    return [data, data.max() - data * (data > 0), np.sqrt(np.abs(data)) * 40, data * 1.5 + 7]


def _labels(shape: tuple[int, ...]) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[8:20, 12:26, 8:16] = 1  # edema, widest where the core is
    labels[6:22, 10:28, 11:13] = 1
    labels[11:17, 15:23, 10:14] = 2  # non-enhancing core
    labels[13:15, 18:20, 11:13] = 3  # enhancing
    return labels


def build_decathlon(root: Path) -> Path:
    """Task01_BrainTumour as the Decathlon ships it: one 4D file per case."""
    task = root / "Task01_BrainTumour"
    data, affine = _anat()
    four = np.stack(_channels(data), axis=-1)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (task / sub).mkdir(parents=True)
    nib.save(nib.Nifti1Image(four, affine), task / "imagesTr" / "BRATS_001.nii.gz")
    nib.save(nib.Nifti1Image(four[::-1].copy(), affine), task / "imagesTs" / "BRATS_002.nii.gz")
    nib.save(nib.Nifti1Image(_labels(data.shape), affine), task / "labelsTr" / "BRATS_001.nii.gz")
    (task / "dataset.json").write_text(json.dumps(MSD_JSON))
    return task


def build_nnunet_v2(root: Path, *, channel_names: dict[str, str] | None = None) -> Path:
    """Dataset001_BrainTumour as nnU-Net v2 wants it: one file per channel, _0000.."""
    task = root / "Dataset001_BrainTumour"
    data, affine = _anat()
    names = channel_names or SEQUENCES
    for sub in ("imagesTr", "labelsTr"):
        (task / sub).mkdir(parents=True)
    for index, channel in zip(names, _channels(data), strict=False):
        path = task / "imagesTr" / f"BRATS_001_{int(index):04d}.nii.gz"
        nib.save(nib.Nifti1Image(channel, affine), path)
    nib.save(nib.Nifti1Image(_labels(data.shape), affine), task / "labelsTr" / "BRATS_001.nii.gz")
    meta = {
        "channel_names": names,
        "labels": {"background": 0, "edema": 1, "non-enhancing": 2, "enhancing": 3,
                   "whole tumour": [1, 2, 3]},
        "numTraining": 1,
        "file_ending": ".nii.gz",
        "description": "glioma",
    }  # fmt: skip
    (task / "dataset.json").write_text(json.dumps(meta))
    return task


def test_decathlon_4d_case_splits_its_sequences(tmp_path: Path) -> None:
    task = build_decathlon(tmp_path)
    cases, rejections, left = claim_all(MsdReader(), tmp_path)
    assert not rejections and left == set()  # dataset.json claimed too
    train, test = sorted(cases, key=lambda c: c.split_hint != "train")
    assert train.split_hint == "train" and test.split_hint == "test"
    assert train.modalities == (Modality.flair, Modality.t1, Modality.t1ce, Modality.t2)
    assert train.label is Diagnosis.glioma and train.mask_kind == "segmentation"
    assert rel(tmp_path, train.files) == [
        "Task01_BrainTumour/imagesTr/BRATS_001.nii.gz",
        "Task01_BrainTumour/labelsTr/BRATS_001.nii.gz",
    ]
    assert test.mask_kind is None and len(test.files) == 1
    loaded = train.load()
    assert list(loaded.images) == ["flair", "t1", "t1ce", "t2"]
    data, _ = _anat()
    for key, channel in zip(loaded.images, _channels(data), strict=True):
        single = tmp_path / f"{key}.nii.gz"
        nib.save(nib.Nifti1Image(channel, nib.load(ANATOMICAL).affine), single)
        np.testing.assert_allclose(loaded.images[key], read_volume(single)[0])
    assert set(np.unique(loaded.mask)) == {0, 1, 2, 3}
    assert loaded.mask_labels == {1: "edema", 2: "non_enhancing", 3: "enhancing"}
    del task


def test_nnunet_v2_channel_files(tmp_path: Path) -> None:
    build_nnunet_v2(tmp_path)
    (case,), rejections, left = claim_all(MsdReader(), tmp_path)
    assert not rejections and not left
    assert case.modalities == (Modality.flair, Modality.t1, Modality.t1ce, Modality.t2)
    assert len(case.files) == 5 and case.channel_files["t1ce"].name == "BRATS_001_0002.nii.gz"
    loaded = case.load()
    assert loaded.mask_labels == {1: "edema", 2: "non_enhancing", 3: "enhancing"}
    assert loaded.mask.shape == loaded.images["t2"].shape


def test_real_4d_file_with_two_named_channels(tmp_path: Path) -> None:
    task = tmp_path / "Task99_Epi"
    (task / "imagesTr").mkdir(parents=True)
    (task / "imagesTr" / "epi_001.nii.gz").write_bytes(EXAMPLE_4D.read_bytes())
    (task / "dataset.json").write_text(json.dumps({"name": "epi", "modality": {"0": "T2",
                                                   "1": "FLAIR"}}))  # fmt: skip
    (case,), _, _ = claim_all(MsdReader(), tmp_path)
    loaded = case.load()
    raw = np.asarray(nib.load(EXAMPLE_4D).dataobj)
    assert list(loaded.images) == ["t2", "flair"]
    assert loaded.images["t2"].shape == (24, 96, 128)  # (z, y, x)
    assert not np.array_equal(loaded.images["t2"], loaded.images["flair"])
    # example4d is LAS: only y flips to reach LPS.
    np.testing.assert_array_equal(loaded.images["flair"], raw[..., 1].transpose(2, 1, 0)[:, ::-1])


def test_label_without_image_and_non_mr_datasets_are_refused(tmp_path: Path) -> None:
    task = build_decathlon(tmp_path / "a")
    (task / "imagesTr" / "BRATS_001.nii.gz").unlink()
    _, rejections, _ = claim_all(MsdReader(), tmp_path / "a")
    assert [r.path.name for r in rejections] == ["BRATS_001.nii.gz"]
    assert "label volume without its image" in rejections[0].reason
    ct = build_decathlon(tmp_path / "b")
    meta = {**MSD_JSON, "name": "Liver", "modality": {"0": "CT"}, "description": "liver"}
    (ct / "dataset.json").write_text(json.dumps(meta))
    cases, rejections, _ = claim_all(MsdReader(), tmp_path / "b")
    assert not cases and rejections and all("not MRI" in r.reason for r in rejections)


def test_unknown_channel_files_are_left_out_with_a_reason(tmp_path: Path) -> None:
    build_nnunet_v2(tmp_path, channel_names={"0": "T2", "1": "ADC"})
    (case,), (skipped,), _ = claim_all(MsdReader(), tmp_path)
    assert case.modalities == (Modality.t2,) and skipped.path.name == "BRATS_001_0001.nii.gz"
    assert "'ADC'" in skipped.reason


def test_labels_are_never_ingested_as_images(tmp_path: Path) -> None:
    build_decathlon(tmp_path / "src")
    build_nnunet_v2(tmp_path / "src")
    db = tmp_path / "out" / "neuroonco.db"
    summary = ingest([tmp_path / "src"], db, None)
    rows = list(slice_rows(connect(db)))
    assert summary.rejected == 0 and rows
    assert {r["source_format"] for r in rows} == {"msd"}
    assert not any("labelsTr" in r["source_path"] for r in rows)
    assert {r["modality"] for r in rows} == {"flair", "t1", "t1ce", "t2"}
    trained = [r for r in rows if r["split_hint"] == "train"]
    assert trained and all(r["mask_path"] and r["label"] == "glioma" for r in trained)
    assert all(r["measurements"]["subregions"] for r in trained if r["measurements"]["lesion"])
    assert {r["source_path"] for r in trained if r["modality"] == "t1ce"} == {
        "Task01_BrainTumour/imagesTr/BRATS_001.nii.gz",
        "Dataset001_BrainTumour/imagesTr/BRATS_001_0002.nii.gz",
    }
    assert all(isinstance(i, object) for i in discover(tmp_path / "src"))


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_unreadable_dataset_json_is_a_reason(tmp_path: Path, bad: str) -> None:
    task = build_decathlon(tmp_path)
    (task / "dataset.json").write_text(bad)
    cases, rejections, _ = claim_all(MsdReader(), tmp_path)
    assert not cases and all("dataset.json is not readable JSON" in r.reason for r in rejections)


def test_single_decathlon_file_keeps_its_label_volume_and_channels(tmp_path: Path) -> None:
    task = build_decathlon(tmp_path)
    (case,) = list(discover(task / "imagesTr" / "BRATS_001.nii.gz"))
    assert case.source_format == "msd" and case.mask_kind == "segmentation"
    assert case.modalities == (Modality.flair, Modality.t1, Modality.t1ce, Modality.t2)
    assert [p.parent.name for p in case.files] == ["imagesTr", "labelsTr"]


def test_2d_nnunet_png_labels_are_masks_and_test_labels_pair_with_test_images(
    tmp_path: Path,
) -> None:
    from PIL import Image

    task = tmp_path / "Dataset002_Slices"
    data, _ = _anat()
    picture = (data[:, :, 12].T / data.max() * 255).clip(0, 255).astype(np.uint8)
    labels = np.zeros(picture.shape, np.uint8)
    labels[10:20, 8:16] = 1
    for images, masks in (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs")):
        (task / images).mkdir(parents=True)
        (task / masks).mkdir()
        Image.fromarray(picture).save(task / images / "s1_0000.png")
        Image.fromarray(labels * (2 if images == "imagesTs" else 1)).save(task / masks / "s1.png")
    (task / "dataset.json").write_text(json.dumps({"channel_names": {"0": "FLAIR"},
                                                   "labels": {"background": 0, "tumour": 1},
                                                   "file_ending": ".png"}))  # fmt: skip
    cases, rejections, left = claim_all(MsdReader(), tmp_path)
    assert not rejections and not left and len(cases) == 2
    by_split = {c.split_hint: c for c in cases}
    assert [p.parent.name for p in by_split["test"].files] == ["imagesTs", "labelsTs"]
    train = by_split["train"].load()
    np.testing.assert_array_equal(train.mask, labels)
    np.testing.assert_array_equal(by_split["test"].load().mask, labels * 2)
    assert train.images["flair"].shape == picture.shape
