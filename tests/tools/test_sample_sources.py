"""The writers of the public layouts, read back with SimpleITK, h5py and Pillow, and the tree."""

from __future__ import annotations

import gzip
import json
import time

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from PIL import Image

from neuroonco.tools.phantom import SEQUENCES, make_phantom, make_slice_phantom
from neuroonco.tools.sample_sources import (
    BAD_INPUT_PROBLEMS,
    mask_to_box,
    mask_to_polygon,
    to_int16,
    write_bad_inputs,
    write_brats2021_case,
    write_brats2023_case,
    write_class_folder_image,
    write_dicom_series,
    write_figshare_mat,
    write_image_mask_pair,
    write_nifti_volume,
    write_yolo_sample,
)
from neuroonco.tools.sample_tree import PLANTED_PHI, main, write_sample_tree


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((24, 48, 48), seed=11, tumour_side="left")


def _orientation(img: sitk.Image) -> str:
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())


def _canonical(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS"))


def test_brats2021_case_is_stored_ras_and_reorients_to_canonical(tmp_path, phantom):
    paths = write_brats2021_case(tmp_path, "BraTS2021_00042", phantom)
    folder = tmp_path / "BraTS2021_00042"
    assert paths == [folder / f"BraTS2021_00042_{s}.nii.gz" for s in (*SEQUENCES, "seg")]
    for seq, path in zip(SEQUENCES, paths, strict=False):
        img = sitk.ReadImage(str(path))
        assert _orientation(img) == "RAS" and img.GetSpacing() == pytest.approx(
            phantom.spacing[::-1]
        )
        assert img.GetPixelID() == sitk.sitkInt16
        raw = sitk.GetArrayFromImage(img)
        expected = to_int16(phantom.volumes[seq])
        # A reader that forgets to reorient sees the image mirrored left/right (and front/back).
        np.testing.assert_array_equal(raw, expected[:, ::-1, ::-1])
        np.testing.assert_array_equal(_canonical(path), expected)
    seg = _canonical(paths[-1])
    assert set(np.unique(seg)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(seg == 4, phantom.mask == 3)
    # The tumour's patient side survives the round trip.
    assert np.nonzero(seg)[2].mean() > phantom.truth["head_centre"][2]


def test_brats_ras_file_keeps_physical_positions(tmp_path, phantom):
    path = write_brats2021_case(tmp_path, "00001", phantom)[0]
    assert path.parent.name == "BraTS2021_00001"
    raw = sitk.ReadImage(str(path))
    lps = sitk.DICOMOrient(raw, "LPS")
    assert lps.GetOrigin() == pytest.approx((0.0, 0.0, 0.0))
    _, ny, nx = phantom.mask.shape
    point = raw.TransformIndexToPhysicalPoint((0, 0, 3))
    assert lps.TransformPhysicalPointToIndex(point) == (nx - 1, ny - 1, 3)


def test_brats2023_case(tmp_path, phantom):
    cid = "BraTS-MEN-00007-000"
    paths = write_brats2023_case(tmp_path, cid, phantom)
    names = [p.name for p in paths]
    assert names == [f"{cid}-{s}.nii.gz" for s in ("t1n", "t1c", "t2w", "t2f", "seg")]
    assert all(p.parent == tmp_path / cid for p in paths)
    np.testing.assert_array_equal(_canonical(paths[-1]), phantom.mask)
    np.testing.assert_array_equal(_canonical(paths[1]), to_int16(phantom.volumes["t1ce"]))


def test_nifti_volume_with_and_without_mask(tmp_path, phantom):
    vol = phantom.volumes["flair"]
    paths = write_nifti_volume(tmp_path / "a" / "scan.nii.gz", vol, mask=phantom.mask)
    assert [p.name for p in paths] == ["scan.nii.gz", "scan_seg.nii.gz"]
    assert _orientation(sitk.ReadImage(str(paths[0]))) == "LPS"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(paths[0]))), vol)
    np.testing.assert_array_equal(_canonical(paths[1]), phantom.mask)
    other = write_nifti_volume(tmp_path / "b.nii", vol, mask=phantom.mask, mask_suffix="_mask")
    assert [p.name for p in other] == ["b.nii", "b_mask.nii"]
    ras = write_nifti_volume(tmp_path / "c.nii.gz", vol, ras=True)
    assert len(ras) == 1 and _orientation(sitk.ReadImage(str(ras[0]))) == "RAS"
    np.testing.assert_array_equal(_canonical(ras[0]), vol)


def test_figshare_mat_is_matlab_v73_column_major(tmp_path):
    image = np.arange(6 * 9, dtype=np.int16).reshape(6, 9)  # not square: catches transposes
    mask = np.zeros((6, 9), dtype=np.uint8)
    mask[2:5, 3:7] = 1
    path = write_figshare_mat(tmp_path / "figshare" / "7.mat", image, mask, label=3, pid="MR0042")
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    assert path.read_bytes()[124:128] == b"\x00\x02IM"
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        cj = f["cjdata"]
        assert cj.attrs["MATLAB_class"] == b"struct"
        assert cj["image"].shape == (9, 6) and cj["image"].dtype == np.int16
        np.testing.assert_array_equal(cj["image"][()].T, image)
        np.testing.assert_array_equal(cj["tumorMask"][()].T, mask)
        assert cj["tumorMask"].attrs["MATLAB_class"] == b"logical"
        assert cj["label"].shape == (1, 1) and cj["label"][0, 0] == 3.0
        assert cj["label"].dtype == np.float64
        pid = cj["PID"]
        assert pid.dtype == np.uint16 and pid.shape == (6, 1)
        assert "".join(map(chr, pid[()].ravel())) == "MR0042"
        assert pid.attrs["MATLAB_class"] == b"char"
        border = cj["tumorBorder"][()]
        assert border.shape[1] == 1 and border.dtype == np.float64
    rows, cols = border.ravel()[0::2] - 1, border.ravel()[1::2] - 1  # 1-based (row, col) pairs
    assert rows.min() >= 1.5 and rows.max() <= 4.5 and cols.min() >= 2.5 and cols.max() <= 6.5


def test_class_folder_images(tmp_path):
    img, _ = make_slice_phantom(64, seed=1)
    path = write_class_folder_image(tmp_path, "Training", "glioma", "Tr-gl_0001", img)
    assert path == tmp_path / "Training" / "glioma" / "Tr-gl_0001.jpg"
    with Image.open(path) as pil:
        assert pil.format == "JPEG" and pil.size == (64, 64) and pil.mode == "L"
        assert np.abs(np.asarray(pil, dtype=float) - img).mean() < 3  # lossy but close
    flat = write_class_folder_image(tmp_path, None, "yes", "Y1", img, fmt="png", rgb=True)
    assert flat == tmp_path / "yes" / "Y1.png"
    with Image.open(flat) as pil:
        assert pil.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(pil)[..., 0], img)


@pytest.mark.parametrize(
    ("style", "image_rel", "mask_rel"),
    [
        ("folders", "images/case.png", "masks/case.png"),
        ("suffix", "case.png", "case_mask.png"),
        ("kaggle", "case/case (3).png", "case/case (3)_mask.png"),
    ],
)
def test_image_mask_pairs(tmp_path, style, image_rel, mask_rel):
    img, mask = make_slice_phantom(64, seed=2)
    paths = write_image_mask_pair(tmp_path, "case", img, mask * 60, style=style, index=3)
    assert paths == [tmp_path / image_rel, tmp_path / mask_rel]
    with Image.open(paths[0]) as a, Image.open(paths[1]) as b:
        np.testing.assert_array_equal(np.asarray(a), img)
        np.testing.assert_array_equal(np.asarray(b), mask * 60)


def test_image_mask_pair_class_and_bad_style(tmp_path):
    img, mask = make_slice_phantom(32, seed=2)
    paths = write_image_mask_pair(tmp_path, "benign", img, mask, style="kaggle", class_name="b")
    assert paths[0] == tmp_path / "b" / "benign (1).png"
    with pytest.raises(ValueError, match="style"):
        write_image_mask_pair(tmp_path, "x", img, mask, style="nested")


def test_yolo_seg_and_det(tmp_path):
    img, mask = make_slice_phantom(100, seed=4)
    img = img[:, :80]  # non-square: x is normalised by the width, y by the height
    mask = mask[:, :80]
    poly = mask_to_polygon(mask, 12)
    assert poly.shape == (12, 2)
    paths = write_yolo_sample(
        tmp_path / "seg",
        "a",
        img,
        [("meningioma", poly)],
        classes=["glioma", "meningioma"],
        kind="seg",
    )
    assert [p.relative_to(tmp_path / "seg").as_posix() for p in paths] == [
        "images/a.jpg",
        "labels/a.txt",
        "data.yaml",
    ]
    row = paths[1].read_text().split()
    assert row[0] == "1" and len(row) == 1 + 24
    np.testing.assert_allclose(np.array(row[1:], float).reshape(-1, 2), poly / [80, 100], atol=1e-5)
    assert yaml.safe_load(paths[2].read_text())["names"] == ["glioma", "meningioma"]
    x0, y0, x1, y1 = mask_to_box(mask)
    det = write_yolo_sample(
        tmp_path / "det",
        "b",
        img,
        [(0, (x0, y0, x1, y1))],
        classes=["glioma", "meningioma"],
        kind="det",
        names_style="dict",
    )
    cls, cx, _, w, h = det[1].read_text().split()
    assert cls == "0"
    assert float(cx) == pytest.approx((x0 + x1) / 2 / 80, abs=1e-5)
    assert float(w) == pytest.approx((x1 - x0) / 80, abs=1e-5)
    assert float(h) == pytest.approx((y1 - y0) / 100, abs=1e-5)
    assert yaml.safe_load(det[2].read_text())["names"] == {0: "glioma", 1: "meningioma"}
    with Image.open(det[0]) as pil:
        assert pil.size == (80, 100)
    with pytest.raises(ValueError, match="kind"):
        write_yolo_sample(tmp_path, "c", img, [], classes=["g"], kind="obb")


def _read_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.MetaDataDictionaryArrayUpdateOn()
    return reader, reader.Execute()


def test_dicom_series_round_trip_with_planted_phi(tmp_path, phantom):
    vol = phantom.volumes["t1ce"]
    kwargs = {k: PLANTED_PHI[k] for k in ("patient_name", "patient_id", "institution")}
    paths = write_dicom_series(
        tmp_path / "s", vol, study_date="20240102", spacing=phantom.spacing, **kwargs
    )
    assert len(paths) == vol.shape[0] and paths[0].name == "IM0001.dcm"
    reader, img = _read_series(tmp_path / "s")
    assert img.GetSpacing() == pytest.approx(phantom.spacing[::-1], rel=1e-6)
    arr = sitk.GetArrayFromImage(sitk.DICOMOrient(img, "LPS"))
    np.testing.assert_array_equal(arr, to_int16(vol))
    assert np.nonzero(arr > 1000)[2].mean() > phantom.truth["head_centre"][2]  # left lesion
    tags = {
        "0010|0010": "PHANTOM^PLANTED",
        "0010|0020": "PID-PLANTED-12345",
        "0010|0030": "19700101",
        "0008|0080": "PLANTED GENERAL HOSPITAL",
        "0008|0020": "20240102",
        "0008|0090": "PLANTED^REFERRER",
        "0008|0050": "ACC-PLANTED-0001",
        "0008|103e": "T1 post contrast",
        "0008|0060": "MR",
        "0020|0037": "1\\0\\0\\0\\1\\0",
    }
    for tag, value in tags.items():
        assert reader.GetMetaData(0, tag).strip() == value, tag
    last = [float(v) for v in reader.GetMetaData(len(paths) - 1, "0020|0032").split("\\")]
    assert last[2] == pytest.approx((len(paths) - 1) * phantom.spacing[0], rel=1e-6)
    uids = {reader.GetMetaData(i, "0008|0018") for i in range(len(paths))}
    assert len(uids) == len(paths)
    write_dicom_series(
        tmp_path / "t", vol, study_date="20240102", spacing=phantom.spacing, **kwargs
    )
    again, _ = _read_series(tmp_path / "t")
    for tag in ("0020|000e", "0020|000d", "0008|0018"):  # deterministic UIDs
        assert again.GetMetaData(3, tag) == reader.GetMetaData(3, tag)


def _nifti_floats(path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    offset = int(np.frombuffer(raw[108:112], "<f4")[0])
    return np.frombuffer(raw[offset:], "<f4")


def test_bad_inputs(tmp_path):
    bad = write_bad_inputs(tmp_path)
    assert set(bad) == set(BAD_INPUT_PROBLEMS)
    assert all(p.exists() for p in bad.values())
    with pytest.raises(EOFError):
        gzip.decompress(bad["truncated_nifti"].read_bytes())
    assert bad["empty_image"].stat().st_size == 0
    with pytest.raises(OSError):
        Image.open(bad["foreign_file"])
    with (
        Image.open(bad["mask_shape_mismatch"]) as a,
        Image.open(bad["mask_shape_mismatch_mask"]) as b,
    ):
        assert a.size != b.size
    # SimpleITK turns NaN into 0 on read, so look at the stored floats themselves.
    assert np.isnan(_nifti_floats(bad["nan_nifti"])).any()
    assert sitk.ReadImage(str(bad["nifti_4d"])).GetDimension() == 4
    assert bad["corrupt_mat"].read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with pytest.raises(OSError):
        h5py.File(bad["corrupt_mat"], "r")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    start = time.perf_counter()
    manifest = write_sample_tree(root, seed=0)
    return root, manifest, time.perf_counter() - start


def test_sample_tree_has_every_layout(tree):
    _, manifest, elapsed = tree
    assert elapsed < 5.0  # ~0.5 s here; generous for slow CI machines
    by = manifest.by_reader()
    minimum = {
        "brats2021": 2,
        "brats2023": 2,
        "figshare_mat": 3,
        "class_folder": 12,
        "image_mask_pairs": 3,
        "yolo": 2,
        "dicom": 1,
        "nifti": 2,
    }
    assert {k: len(by.get(k, [])) >= n for k, n in minimum.items()} == dict.fromkeys(minimum, True)
    assert {c.label for c in by["brats2023"]} == {"glioma", "meningioma"}
    assert {c.label for c in by["figshare_mat"]} == {"meningioma", "glioma", "pituitary_tumor"}
    folders = {c.path.rsplit("/", 1)[0] for c in by["class_folder"]}
    for split in ("Training", "Testing"):
        for cls in ("glioma", "meningioma", "pituitary", "notumor"):
            assert f"kaggle_brain_tumor_mri/{split}/{cls}" in folders
    assert {"brain_mri_yes_no/yes", "brain_mri_yes_no/no"} <= folders
    assert {c.path.split("/")[0] for c in by["image_mask_pairs"]} == {
        "pairs_folders",
        "pairs_suffix",
        "pairs_kaggle",
    }
    assert {c.mask_kind for c in by["yolo"]} == {"segmentation", "box"}
    assert {c.has_mask for c in by["nifti"]} == {True, False}
    assert {c.truth["side"] for c in by["brats2021"]} == {"left", "right"}


def test_sample_tree_files_are_accounted_for(tree):
    root, manifest, _ = tree
    listed = {f for c in manifest.cases for f in c.files} | set(manifest.bad_files)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert listed <= on_disk
    assert {p for p in on_disk - listed} == {"yolo_seg/data.yaml", "yolo_det/data.yaml"}
    assert set(manifest.bad_files.values()) == set(BAD_INPUT_PROBLEMS.values())


def test_sample_tree_duplicate_phi_and_manifest(tree):
    root, manifest, _ = tree
    (dup,) = manifest.duplicates
    with h5py.File(root / dup["duplicate_of"], "r") as f:
        original = f["cjdata/image"][()].T.astype(float)
    with Image.open(root / dup["path"]) as pil:
        copy = np.asarray(pil, dtype=float)
        resized = np.asarray(Image.fromarray(original.astype(np.float32)).resize(pil.size))
    assert copy.shape != original.shape
    assert np.corrcoef(copy.ravel(), resized.ravel())[0, 1] > 0.97
    (dicom,) = manifest.by_reader()["dicom"]
    assert "PID-PLANTED-12345" in dicom.path and "PHANTOM^PLANTED" in dicom.phi
    reader, _ = _read_series(root / dicom.path.rsplit("/", 1)[0])
    assert reader.GetMetaData(0, "0010|0010").strip() == "PHANTOM^PLANTED"
    data = json.loads(json.dumps(manifest.to_dict()))
    assert data["planted_phi"]["patient_id"] == "PID-PLANTED-12345"
    assert len(data["cases"]) == len(manifest.cases)


def test_sample_tree_is_deterministic(tmp_path, tree):
    root, manifest, _ = tree
    again = write_sample_tree(tmp_path / "again", seed=0)
    assert [c.files for c in again.cases] == [c.files for c in manifest.cases]
    for rel in (
        "BraTS2021_TrainingData/BraTS2021_00000/BraTS2021_00000_t1.nii.gz",
        "figshare_brain_tumor/2.mat",
        "dicom/PID-PLANTED-12345/T1_POST/IM0010.dcm",
        "kaggle_brain_tumor_mri/Training/glioma/Tr-gl_0000.jpg",
    ):
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    other = write_sample_tree(tmp_path / "other", seed=1)
    rel = "figshare_brain_tumor/2.mat"
    assert (root / rel).read_bytes() != (tmp_path / "other" / rel).read_bytes()
    assert other.cases[0].truth != manifest.cases[0].truth


def test_cli(tmp_path, capsys):
    main([str(tmp_path / "out"), "--seed", "3", "--manifest", str(tmp_path / "m.json")])
    assert "wrote 40 cases" in capsys.readouterr().out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["seed"] == 3 and data["small"] is True
    assert (tmp_path / "out" / "figshare_brain_tumor" / "1.mat").exists()
    assert not (tmp_path / "out" / "m.json").exists()
