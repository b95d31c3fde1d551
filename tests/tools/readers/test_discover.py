"""Discovery over a mixed tree: every layout found by its reader, every other file explained."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from neuroonco.errors import UnreadableInput
from neuroonco.tools.readers import _common, class_folder, dicom, pairs, yolo
from neuroonco.tools.readers.base import Rejection, SourceCase
from neuroonco.tools.readers.discover import READERS, discover, is_sidecar
from neuroonco.tools.sample_tree import write_sample_tree

from .builders import Sources, blob, rel, write_dicom, write_image, write_mat, write_volume

PHI = {"0010|0010": "ROE^RICHARD", "0010|0020": "R-0001", "0008|0080": "MERCY CLINIC"}


def _mixed_tree(src: Sources) -> dict[str, str]:
    """Every layout once, plus noise; returns {primary file: expected reader}."""
    img2d, mask2d = blob((24, 32), radius=5)
    src.brats2021(folder="BraTS2021")
    src.brats2023(folder="BraTS2023")
    src.brats2021("BraTS2021_00009", folder="BraTS2021", skip=("flair",))
    write_mat(src.path("figshare/1.mat"), img2d, mask2d, label=1, pid="990011")
    write_dicom(src.path("dicom/R-0001/series1"), blob()[0], tags=PHI)
    write_volume(src.path("volumes/brain_t2.nii.gz"), blob()[0])
    write_volume(src.path("volumes/brain_t2_seg.nii.gz"), blob()[1])
    write_image(src.path("kaggle/Training/glioma/Tr-gl_0001.jpg"), img2d)
    write_image(src.path("kaggle/Testing/notumor/Te-no_0001.jpg"), img2d)
    write_image(src.path("pairs/images/p1.png"), img2d)
    write_image(src.path("pairs/masks/p1.png"), mask2d * 255)
    write_image(src.path("yolo/train/images/y1.jpg"), img2d)
    src.path("yolo/train/labels").mkdir(parents=True)
    src.path("yolo/train/labels/y1.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    src.path("yolo/data.yaml").write_text("names: [glioma]\n")
    # Noise: sidecars, hidden files, macOS debris, foreign and empty files.
    src.path("kaggle/README.md").write_text("a dataset")
    src.path("BraTS2021/name_mapping.csv").write_text("a,b\n")
    src.path("volumes/dataset.json").write_text("{}")
    src.path("kaggle/Training/.DS_Store").write_bytes(b"\0\1")
    src.path(".cache").mkdir()
    src.path(".cache/x.png").write_bytes(b"junk")
    src.path("__MACOSX/kaggle").mkdir(parents=True)
    src.path("__MACOSX/kaggle/._Tr-gl_0001.jpg").write_bytes(b"junk")
    src.path("notes.docx").write_bytes(np.random.default_rng(0).bytes(64))
    src.path("kaggle/empty.png").write_bytes(b"")
    return {
        "BraTS2021/BraTS2021_00000/BraTS2021_00000_t1.nii.gz": "brats2021",
        "BraTS2023/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz": "brats2023",
        "figshare/1.mat": "figshare_mat",
        "dicom/R-0001/series1/s1_001.dcm": "dicom",
        "volumes/brain_t2.nii.gz": "nifti",
        "kaggle/Training/glioma/Tr-gl_0001.jpg": "class_folder",
        "kaggle/Testing/notumor/Te-no_0001.jpg": "class_folder",
        "pairs/images/p1.png": "image_mask_pairs",
        "yolo/train/images/y1.jpg": "yolo",
    }


def test_mixed_tree(src: Sources) -> None:
    expected = _mixed_tree(src)
    items = list(discover(src.root))
    cases = [i for i in items if isinstance(i, SourceCase)]
    rejections = {
        r.path.relative_to(src.root).as_posix(): r.reason for r in items if isinstance(r, Rejection)
    }
    found = {rel(src.root, c.files[:1])[0]: c.source_format for c in cases}
    assert found == expected
    assert set(rejections) == {
        "notes.docx",
        "kaggle/empty.png",
        *(
            f"BraTS2021/BraTS2021_00009/BraTS2021_00009_{s}.nii.gz"
            for s in ("t1", "t1ce", "t2", "seg")
        ),
    }
    assert rejections["notes.docx"].startswith("not a recognised image or volume format")
    assert "empty file" in rejections["kaggle/empty.png"]
    # Every visible file is a case's, a rejection, or a sidecar skipped on purpose.
    consumed = {f for c in cases for f in c.files} | {src.root / r for r in rejections}
    hidden = (".", "__MACOSX")
    visible = {
        p
        for p in src.root.rglob("*")
        if p.is_file() and not any(s.startswith(hidden) for s in p.relative_to(src.root).parts)
    }
    assert all(is_sidecar(p) for p in visible - consumed)
    skipped = {p.name for p in visible - consumed}
    assert skipped == {"README.md", "name_mapping.csv", "dataset.json", "data.yaml"}


def test_discovery_is_deterministic_and_streams(src: Sources, monkeypatch) -> None:
    _mixed_tree(src)

    def forbidden(*args, **kwargs):
        raise AssertionError("discovery must not read voxel data")

    # Every image/volume read goes through these; readers look them up only in load().
    for module, name in [
        (_common, "read_volume"),
        (_common, "read_nifti"),
        (_common, "read_sitk"),
        (class_folder, "read_image_2d"),
        (pairs, "read_image_2d"),
        (yolo, "read_image_2d"),
        (dicom, "sitk_to_array"),
    ]:
        monkeypatch.setattr(module, name, forbidden)
    stream = discover(src.root)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert isinstance(first, Rejection | SourceCase)
    order = [first, *stream]
    again = list(discover(src.root))
    assert [getattr(i, "files", getattr(i, "path", None)) for i in order] == [
        getattr(i, "files", getattr(i, "path", None)) for i in again
    ]


def test_reader_order() -> None:
    names = [r.name for r in READERS]
    assert names.index("brats2021") < names.index("nifti")
    assert names.index("yolo") < names.index("image_mask_pairs") < names.index("class_folder")
    assert names[-1] == "class_folder"


def test_single_file_root_and_missing_root(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "one_flair.nii.gz", blob()[0])
    (case,) = discover(path)
    assert case.source_format == "nifti" and case.files == (path,)
    with pytest.raises(UnreadableInput, match="no such file or folder"):
        list(discover(tmp_path / "absent"))


def test_readers_agree_with_the_sample_tree_manifest(tmp_path: Path) -> None:
    """The shared sample tree (tools/sample_tree) agrees with the readers on the layouts."""
    manifest = write_sample_tree(tmp_path, seed=3)
    items = list(discover(tmp_path))
    cases = {
        c.files[0].relative_to(tmp_path).as_posix(): c for c in items if isinstance(c, SourceCase)
    }
    for expected in manifest.cases:
        case = cases[expected.path]
        assert case.source_format == expected.reader, expected.path
        assert (case.label.value if case.label else None) == expected.label, expected.path
    # Each bad input is either rejected up front or fails when loaded.
    rejected = {r.path.relative_to(tmp_path).as_posix() for r in items if isinstance(r, Rejection)}
    for bad in manifest.bad_files:
        if bad in rejected:
            continue
        owner = next(c for c in cases.values() if tmp_path / bad in c.files)
        with pytest.raises(UnreadableInput):
            owner.load()


def test_folder_links_are_followed_once_and_loops_end(tmp_path: Path) -> None:
    outside = tmp_path / "annex_store"
    write_volume(outside / "sub-01_T2w.nii.gz", blob()[0])
    root = tmp_path / "dataset"
    root.mkdir()
    (root / "sub-01").symlink_to(outside)  # DataLad/annex: the data lives elsewhere
    (root / "mirror").symlink_to(outside)  # a second link to the same folder
    (outside / "up").symlink_to(root)  # a loop back to the root
    items = list(discover(root))
    cases = [i for i in items if isinstance(i, SourceCase)]
    assert [rel(root, c.files) for c in cases] == [["mirror/sub-01_T2w.nii.gz"]]
    assert [i for i in items if isinstance(i, Rejection)] == []


def test_dangling_and_unreadable_files_are_rejected_not_crashes(tmp_path: Path) -> None:
    write_volume(tmp_path / "real_t1.nii.gz", blob()[0])
    (tmp_path / "sub-02_T1w.nii.gz").symlink_to(tmp_path / ".git/annex/objects/XX/key")
    (tmp_path / "broken_folder").symlink_to(tmp_path / "missing_dir")
    items = list(discover(tmp_path))
    rejected = {i.path.name: i.reason for i in items if isinstance(i, Rejection)}
    assert set(rejected) == {"sub-02_T1w.nii.gz", "broken_folder"}
    assert all("dangling symbolic link" in r and "datalad get" in r for r in rejected.values())
    assert [c.files[0].name for c in items if isinstance(c, SourceCase)] == ["real_t1.nii.gz"]
