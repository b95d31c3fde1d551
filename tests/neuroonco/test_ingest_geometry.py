"""Ingest end to end on trees built from nibabel's real volumes: planes and laterality as the
headers say, a single file read with its surroundings, and one-line rejection reasons with no
library output on the terminal."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.testing import data_path
from PIL import Image

from neuroonco.ingest import ingest, slice_rows
from neuroonco.store import connect

ANATOMICAL = Path(data_path) / "anatomical.nii"  # a real 2 mm brain, 33 x 41 x 25, LAS


def _anat() -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(ANATOMICAL)
    return np.asarray(img.dataobj).astype(np.int16), img.affine


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def _rows(db: Path) -> list[dict]:
    return list(slice_rows(connect(db)))


def _rejections(db: Path) -> dict[str, str]:
    with closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("select path, reason from rejected_inputs"))


def test_2d_nifti_laterality_follows_its_header(tmp_path: Path) -> None:
    data, affine = _anat()
    z = 12
    slab = affine.copy()
    slab[:3, 3] += z * affine[:3, 2]
    image = data[:, :, z].copy()
    lesion = np.zeros(image.shape, np.uint8)
    lesion[22:28, 15:22] = 1  # high i: LAS, so toward the patient's LEFT
    # Stored flipped along i with a header saying so: the lesion is still on the left.
    flip = slab @ np.array([[-1, 0, 0, 32], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    for name, img, msk, aff in (("as_is", image, lesion, slab),
                                ("flipped", image[::-1], lesion[::-1], flip)):  # fmt: skip
        _save(tmp_path / "src" / name / "s_t1.nii", np.ascontiguousarray(img), aff)
        _save(tmp_path / "src" / name / "s_t1_seg.nii", np.ascontiguousarray(msk), aff)
    ingest([tmp_path / "src"], tmp_path / "db" / "n.db")
    rows = _rows(tmp_path / "db" / "n.db")
    assert len(rows) == 2
    for row in rows:
        facts = row["measurements"]
        assert row["plane"] == "axial" and row["slice_index"] is None
        assert facts["laterality"] == "left" and facts["laterality_source"] == "orientation"
        assert facts["image_right_share"] == 1.0  # radiological view: patient left = image right


def test_thick_sagittal_volume_is_stored_as_sagittal_slices(tmp_path: Path) -> None:
    data, affine = _anat()
    thick = data[::4]  # every 4th sagittal plane: 8 mm apart
    stored = np.ascontiguousarray(thick.transpose(1, 2, 0))  # index axes (A, S, L)
    aff = affine @ np.diag([4.0, 1.0, 1.0, 1.0])
    perm = np.eye(4)
    perm[:3, :3] = np.eye(3)[:, [1, 2, 0]]
    aff = aff @ perm
    lesion = np.zeros(stored.shape, np.uint8)
    lesion[10:20, 8:16, 6:8] = 1  # sagittal planes 6-7 of 9: the patient's left (LAS: i -> L)
    _save(tmp_path / "src" / "p_t2.nii.gz", stored, aff)
    _save(tmp_path / "src" / "p_t2_seg.nii.gz", lesion, aff)
    ingest([tmp_path / "src"], tmp_path / "db" / "n.db")
    (row,) = _rows(tmp_path / "db" / "n.db")
    assert row["plane"] == "sagittal" and row["slice_index"] in (6, 7)
    png = np.asarray(Image.open(tmp_path / "db" / row["image_path"]))
    assert png.shape == (25, 41)  # superior-inferior x anterior-posterior, not a 9-px strip
    facts = row["measurements"]
    assert facts["laterality"] == "left" and facts["laterality_source"] == "slice_position"
    assert facts["pixel_spacing_mm"] == [2.0, 2.0]


def test_single_file_source_keeps_its_mask_and_class_folder(tmp_path: Path) -> None:
    data, affine = _anat()
    lesion = np.zeros(data.shape, np.uint8)
    lesion[8:14, 10:20, 10:14] = 1
    volume = _save(tmp_path / "src" / "glioma" / "p01_flair.nii.gz", data, affine)
    _save(tmp_path / "src" / "glioma" / "p01_flair_seg.nii.gz", lesion, affine)
    _save(tmp_path / "src" / "glioma" / "p02_flair.nii.gz", data[::-1].copy(), affine)
    slice8 = (data[:, :, 12].T.astype(float) / data.max() * 255).astype(np.uint8)
    jpg = tmp_path / "src" / "Training" / "meningioma" / "m1.jpg"
    jpg.parent.mkdir(parents=True)
    Image.fromarray(slice8).save(jpg)
    pair = tmp_path / "src" / "kaggle" / "images" / "a.png"
    pair.parent.mkdir(parents=True)
    Image.fromarray(slice8).save(pair)
    (tmp_path / "src" / "kaggle" / "masks").mkdir()
    Image.fromarray(((slice8 > 200) * 255).astype(np.uint8)).save(
        tmp_path / "src" / "kaggle" / "masks" / "a.png"
    )
    db = tmp_path / "db" / "n.db"
    ingest([volume, jpg, pair], db)
    rows = {r["source_format"]: r for r in _rows(db)}
    assert set(rows) == {"nifti", "class_folder", "image_mask_pairs"}  # p02 was not asked for
    assert rows["nifti"]["label"] == "glioma" and rows["nifti"]["mask_path"]
    assert rows["nifti"]["measurements"]["lesion"] is True
    assert rows["class_folder"]["label"] == "meningioma"
    assert rows["image_mask_pairs"]["mask_path"]
    assert not _rejections(db)


def test_rejection_reasons_are_one_line_and_libraries_stay_quiet(tmp_path: Path, capfd) -> None:
    data, affine = _anat()
    src = tmp_path / ("a_rather_long_folder_name_" * 6) / "src"
    bad = src / "bad"
    bad.mkdir(parents=True)
    (bad / "notgzip.nii.gz").write_text("a text file, not gzip and not NIfTI\n")
    plain = _save(tmp_path / "plain.nii", data, affine)
    (bad / "misnamed.nii.gz").write_bytes(plain.read_bytes())  # an uncompressed NIfTI
    skew = affine.copy()
    skew[0, 1] = 0.6  # not orthonormal: ITK refuses with a dozen lines of its own
    img = nib.Nifti1Image(data, skew)
    img.set_qform(None, code=0)
    nib.save(img, bad / "skewed.nii")
    warn = nib.Nifti1Image(data, affine)
    warn.set_qform(affine, code=1)
    warn.set_sform(skew, code=1)  # ITK warns about the sform, and reads the qform
    nib.save(warn, src / "warns.nii")
    (bad / "junk.mha").write_text("not a metaimage")
    slice8 = (data[:, :, 12].T.astype(float) / data.max() * 255).astype(np.uint8)
    palette = Image.fromarray(slice8).convert("P")
    palette.info["transparency"] = bytes(range(256))  # Pillow warns when converting it
    palette.save(src / "glioma_palette.png", transparency=bytes(range(256)))
    db = tmp_path / "db" / "n.db"
    # The command as a user runs it, writing to this test's terminal (captured by capfd).
    capfd.readouterr()
    subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", "ingest", str(src), "--db", str(db)], check=True
    )
    out, err = capfd.readouterr()
    noise = ("WARNING", "Warning", "itk", "ITK", "Palette", "SimpleITK-build")
    assert not [word for word in noise if word in out + err], err
    reasons = _rejections(db)
    assert set(reasons) == {f"src/bad/{n}" for n in ("notgzip.nii.gz", "skewed.nii", "junk.mha")}
    for reason in reasons.values():
        assert "\n" not in reason and str(tmp_path) not in reason and "/tmp" not in reason
        assert ".cxx" not in reason and "0x" not in reason
    assert "re-download" not in reasons["src/bad/notgzip.nii.gz"]
    assert "not gzip" in reasons["src/bad/notgzip.nii.gz"]
    assert "orthonormal" in reasons["src/bad/skewed.nii"]
    assert "junk.mha" in reasons["src/bad/junk.mha"]
    paths = {r["source_path"] for r in _rows(db)}
    assert {"bad/misnamed.nii.gz", "warns.nii", "glioma_palette.png"} <= paths


def test_symmetric_copies_are_duplicates_and_1mm_neighbours_are_not(tmp_path: Path) -> None:
    data, _ = _anat()
    vol = data.astype(np.float32)

    def template(plane: np.ndarray) -> np.ndarray:  # mirror-symmetric, as brain templates are
        sym = (plane.T + plane.T[:, ::-1]) / 2
        big = np.asarray(Image.fromarray(sym).resize((192, 160), Image.Resampling.BICUBIC))
        return np.clip(big / vol.max() * 255, 0, 255).astype(np.uint8)

    z = 13
    a = tmp_path / "one" / "glioma" / "t.png"
    a.parent.mkdir(parents=True)
    Image.fromarray(template(vol[:, :, z])).save(a)
    b = tmp_path / "two" / "glioma" / "t_copy.jpg"
    b.parent.mkdir(parents=True)
    Image.fromarray(template(vol[:, :, z])).save(b, quality=70)
    c = tmp_path / "three" / "glioma" / "t_up.png"
    c.parent.mkdir(parents=True)
    Image.fromarray(template((vol[:, :, z] + vol[:, :, z + 1]) / 2)).save(c)  # 1 mm higher
    db = tmp_path / "db" / "n.db"
    ingest([a.parents[1], b.parents[1], c.parents[1]], db)
    rows = {r["source_path"]: r for r in _rows(db)}
    original = rows["glioma/t.png"]
    assert rows["glioma/t_copy.jpg"]["duplicate_of"] == original["id"]
    assert rows["glioma/t_up.png"]["duplicate_of"] is None
