"""The figshare brain tumour set: MATLAB v7.3 cjdata files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers.figshare import FigshareMatReader

from .builders import claim_all, write_mat


def _slice() -> tuple[np.ndarray, np.ndarray]:
    # Not square, so a missing transpose cannot go unnoticed.
    image = np.tile(np.arange(30, dtype=np.int16) * 10, (20, 1))
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:6, 20:27] = 1
    return image, mask


@pytest.mark.parametrize(
    ("code", "label"),
    [(1, Diagnosis.meningioma), (2, Diagnosis.glioma), (3, Diagnosis.pituitary_tumor)],
)
def test_figshare_slice(tmp_path: Path, code: int, label: Diagnosis) -> None:
    image, mask = _slice()
    write_mat(
        tmp_path / "brainTumorDataPublic_1-766" / "7.mat", image, mask, label=code, pid="MR04"
    )
    (case,), rejections, left = claim_all(FigshareMatReader(), tmp_path)
    assert not rejections and not left
    assert case.label is label and case.source_format == "figshare_mat"
    assert case.subject_key == "MR04" and case.phi_strings == ("MR04",)
    assert case.modalities == (Modality.t1ce,) and case.mask_kind == "segmentation"
    assert "MR04" not in case.dataset
    loaded = case.load()
    assert not loaded.orientation_known and not loaded.is_volume
    np.testing.assert_array_equal(loaded.images["t1ce"], image.astype(np.float32))
    assert loaded.images["t1ce"].dtype == np.float32
    np.testing.assert_array_equal(loaded.mask, mask)


def test_non_cjdata_and_v5_files_are_rejected(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "cvind.mat", "w") as f:
        f["cvind"] = np.arange(5.0)
    (tmp_path / "old.mat").write_bytes(b"MATLAB 5.0 MAT-file, Platform: PCWIN" + bytes(200))
    (tmp_path / "corrupt.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(512) + bytes(100))
    cases, rejections, left = claim_all(FigshareMatReader(), tmp_path)
    assert not cases and not left
    reasons = {r.path.name: r.reason for r in rejections}
    assert "without a cjdata struct" in reasons["cvind.mat"]
    assert "v7.3" in reasons["old.mat"]
    assert "not a readable figshare cjdata file" in reasons["corrupt.mat"]


def test_missing_image_fails_at_load(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "1.mat", *_slice(), label=2, pid="100360")
    with h5py.File(path, "r+") as f:
        del f["cjdata/image"]
    (case,), _, _ = claim_all(FigshareMatReader(), tmp_path)
    with pytest.raises(UnreadableInput, match=r"1\.mat.*cjdata\.image"):
        case.load()


def test_out_of_range_label_is_rejected(tmp_path: Path) -> None:
    write_mat(tmp_path / "9.mat", *_slice(), label=7, pid="1")
    _, (rejection,), _ = claim_all(FigshareMatReader(), tmp_path)
    assert "not 1, 2 or 3" in rejection.reason
