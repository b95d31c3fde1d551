"""The DICOM reader on the files the pydicom wheel ships: non-MR objects, DICOMDIR trees,
files named by UID, declared character sets, echoes, repeated positions, gaps, localizers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from neuroonco.tools.readers.dicom import DicomReader
from neuroonco.tools.readers.discover import discover
from tests.support.real_dicom import (
    TEST_FILES,
    charset_name,
    copy_shipped,
    mr_series,
    rewrite,
    shipped,
)

from .builders import claim_all

_NON_MR = {
    "CT_small.dcm": "CT",
    "rtdose.dcm": "RTDOSE",
    "rtstruct.dcm": "RTSTRUCT",
    "liver_1frame.dcm": "SEG",
    "test-SR.dcm": "SR",
    "SC_rgb_jpeg.dcm": "OT",
    "charset_files/chrX1.dcm": "OT",
    "charset_files/chrJapMulti.dcm": "CR",
}


def test_non_mr_objects_are_rejected_naming_their_modality(tmp_path: Path) -> None:
    for name, _ in _NON_MR.items():
        copy_shipped(name, tmp_path / "mixed" / Path(name).name)
    # No shipped file is NM, US or an MR secondary capture: real files re-tagged.
    rewrite("MR_small.dcm", tmp_path / "mixed" / "nm.dcm", Modality="NM")
    rewrite("MR_small.dcm", tmp_path / "mixed" / "us.dcm", Modality="US")
    rewrite("MR_small.dcm", tmp_path / "mixed" / "sc.dcm", SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    cases, rejections, left = claim_all(DicomReader(), tmp_path)
    assert cases == [] and left == set()
    reasons = {r.path.name: r.reason for r in rejections}
    expected = {Path(k).name: v for k, v in _NON_MR.items()} | {"nm.dcm": "NM", "us.dcm": "US"}
    for name, modality in expected.items():
        assert f"Modality {modality} " in reasons[name], (name, reasons[name])
        assert "only MRI is ingested" in reasons[name]
    assert "secondary capture" in reasons["sc.dcm"]
    assert all("\n" not in r for r in reasons.values())


def test_a_real_mr_file_is_still_a_case(tmp_path: Path) -> None:
    copy_shipped("MR_small.dcm", tmp_path / "s" / "MR_small.dcm")
    (case,), rejections, _ = claim_all(DicomReader(), tmp_path)
    assert rejections == []
    assert case.load().images["unknown"].shape == (64, 64)


def test_dicomdir_tree_is_read_by_content(tmp_path: Path) -> None:
    """pydicom's DICOMDIR test tree: extensionless files in PATIENT/STUDY folders, the DICOMDIR
    index beside them, MR single slices, three-plane localizers, CT and CR series."""
    root = tmp_path / "dicomdirtests"
    shutil.copytree(TEST_FILES / "dicomdirtests", root)
    items = list(discover(root))
    cases = [i for i in items if not hasattr(i, "reason")]
    rejected = {
        i.path.relative_to(root).as_posix(): i.reason for i in items if hasattr(i, "reason")
    }
    assert not any("not a recognised" in r for r in rejected.values()), rejected
    assert not any(p.endswith("DICOMDIR") for p in rejected)  # the index is skipped, not refused
    mr_cases = {c.files[0].relative_to(root).as_posix() for c in cases}
    # MR1 holds three single-slice series; MR2/15970 is a fourth.
    assert {p for p in mr_cases if p.startswith("98892003/")} == {
        "98892003/MR1/15820",
        "98892003/MR1/4919",
        "98892003/MR1/5641",
        "98892003/MR2/15970",
    }
    # The other MR2 series and MR700 are localizers: one slice per plane, or radial slices.
    for name in ("MR2/4950", "MR2/4981", "MR2/5011", "MR2/6273", "MR700/4467", "MR700/4648"):
        assert "orientations" in rejected[f"98892003/{name}"], name
    assert all("Modality C" in r for p, r in rejected.items() if p.startswith(("77654033/CT",)))
    assert all("Modality CR" in r for p, r in rejected.items() if "/CR" in p)


def test_files_named_by_uid_without_extension_are_read(tmp_path: Path) -> None:
    files = mr_series(tmp_path / "study", 5, name=lambda ds, i: str(ds.SOPInstanceUID))
    assert all(Path(f).suffix.lstrip(".").isdigit() for f in files)  # "1.2.826...0001"
    (case,), rejections, left = claim_all(DicomReader(), tmp_path)
    assert rejections == [] and left == set()
    assert sorted(case.files) == sorted(files)
    assert case.load().images["unknown"].shape == (5, 64, 64)


@pytest.mark.parametrize(
    "file", ["chrGerm.dcm", "chrFren.dcm", "chrH31.dcm", "chrH32.dcm", "chrI2.dcm", "chrX2.dcm"]
)
def test_names_are_decoded_with_the_declared_character_set(tmp_path: Path, file: str) -> None:
    charset, patient = charset_name(file)
    tags = {"SpecificCharacterSet": charset, "PatientName": patient}
    mr_series(tmp_path / "s", 2, tags=tags)
    assert "\\x" not in repr(patient.encode("utf-8"))[:0]  # decoded text, no escapes
    (case,), _, _ = claim_all(DicomReader(), tmp_path)
    assert patient in case.phi_strings
    assert not any("\udc80" <= c <= "\udcff" for s in case.phi_strings for c in s)
    raw = (tmp_path / "s" / "IM0001.dcm").read_bytes()
    assert patient.encode("utf-8") not in raw or charset in ("ISO_IR 192",)  # really re-encoded


def test_echoes_of_one_series_are_split_into_stacks(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.77"
    mr_series(tmp_path / "s", 4, series_uid=uid, tags={"EchoNumbers": 1, "EchoTime": 20})
    mr_series(
        tmp_path / "s",
        4,
        series_uid=uid,
        tags={"EchoNumbers": 2, "EchoTime": 90},
        name=lambda ds, i: f"E2_{i:04d}.dcm",
    )
    cases, rejections, _ = claim_all(DicomReader(), tmp_path)
    assert rejections == []
    assert sorted(len(c.files) for c in cases) == [4, 4]
    assert {frozenset(f.name[:2] for f in c.files) for c in cases} == {
        frozenset({"IM"}),
        frozenset({"E2"}),
    }
    for case in cases:
        assert case.load().images["unknown"].shape == (4, 64, 64)


def test_repeated_positions_split_by_acquisition_or_refused(tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.8.498.78"
    for acq in (1, 2):
        mr_series(
            tmp_path / "split",
            3,
            series_uid=uid,
            tags={"AcquisitionNumber": acq},
            name=lambda ds, i, acq=acq: f"A{acq}_{i}.dcm",
        )
    cases, rejections, _ = claim_all(DicomReader(), tmp_path)
    assert rejections == [] and sorted(len(c.files) for c in cases) == [3, 3]

    shutil.rmtree(tmp_path / "split")
    for copy in (1, 2):  # the same positions twice with nothing telling them apart
        mr_series(tmp_path / "dup", 3, series_uid=uid, name=lambda ds, i, c=copy: f"C{c}_{i}.dcm")
    cases, rejections, _ = claim_all(DicomReader(), tmp_path)
    assert cases == [] and len(rejections) == 6
    assert "repeat a position" in rejections[0].reason


def test_a_series_with_a_gap_is_refused(tmp_path: Path) -> None:
    mr_series(tmp_path / "s", 8, step=1.5, skip=(4,))
    cases, rejections, _ = claim_all(DicomReader(), tmp_path)
    assert cases == [] and len(rejections) == 7
    assert "uneven slice spacing" in rejections[0].reason and "missing" in rejections[0].reason


def test_slices_are_stacked_in_position_order_whatever_their_names(tmp_path: Path) -> None:
    # File names sort in the reverse of the slice order: positions decide.
    files = mr_series(tmp_path / "s", 5, name=lambda ds, i: f"IM{9 - i}.dcm")
    (case,), _, _ = claim_all(DicomReader(), tmp_path)
    assert list(case.files) == files
    volume = case.load().images["unknown"]
    import pydicom

    first = pydicom.dcmread(shipped("MR_small.dcm")).pixel_array
    # Slice i was rolled by i: each stored slice is one of them, all distinct, in an order.
    rolls = [next(k for k in range(5) if np.array_equal(np.roll(first, k, 1), v)) for v in volume]
    assert sorted(rolls) == [0, 1, 2, 3, 4] and rolls in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
