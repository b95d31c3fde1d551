"""DICOM series: grouping, orientation, and keeping identifiers out of every field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from neuroonco.schemas.vocabulary import Modality
from neuroonco.tools.locale_guard import locale_kept
from neuroonco.tools.readers.dicom import DicomReader

from .builders import blob, claim_all, write_dicom

PHI = {
    "0010|0010": "DOE^JANE",
    "0010|0020": "PAT-4471",
    "0008|0080": "ST ELSEWHERE HOSPITAL",
    "0008|0050": "ACC99812",
    "0008|0020": "20230405",
    "0010|0030": "19601231",
    "0008|0090": "HOUSE^GREGORY",
}


def test_series_case_fields_and_phi(tmp_path: Path) -> None:
    vol, _ = blob(centre=(5, 8, 15))
    write_dicom(tmp_path / "PAT-4471" / "study" / "t1post", vol, tags=PHI)
    (case,), rejections, left = claim_all(DicomReader(), tmp_path)
    assert not rejections and not left
    assert case.source_format == "dicom" and len(case.files) == vol.shape[0]
    assert case.subject_key == "PAT-4471"
    assert case.modalities == (Modality.t1ce,)  # "AX T1 POST GD"
    assert {"DOE^JANE", "PAT-4471", "ST ELSEWHERE HOSPITAL", "ACC99812", "20230405"} <= set(
        case.phi_strings
    )
    # The top folder is named after the patient: the dataset name must not repeat it.
    assert case.dataset == tmp_path.name
    # No tag value reaches any field but subject_key (hashed downstream) and phi_strings.
    exposed = {
        f.name: str(getattr(case, f.name))
        for f in dataclasses.fields(case)
        if f.name not in ("subject_key", "phi_strings", "files", "load")
    }
    for value in PHI.values():
        for part in value.replace("^", " ").split():
            assert all(part not in text for text in exposed.values()), (part, exposed)
    loaded = case.load()
    assert loaded.orientation_known and list(loaded.images) == ["t1ce"]
    np.testing.assert_array_equal(loaded.images["t1ce"], vol.astype(np.int16))
    # x grows toward the patient's left: the lesion written at x=15 of 20 stays there.
    assert np.flatnonzero(loaded.images["t1ce"].max(axis=(0, 1)) > 300).min() > 10


def test_two_series_in_one_folder_are_two_cases(tmp_path: Path) -> None:
    vol, _ = blob()
    write_dicom(tmp_path / "mixed", vol, tags=PHI, description="Ax T2 FLAIR", series="1")
    write_dicom(tmp_path / "mixed", vol, tags=PHI, description="localizer", series="2")
    cases, _, left = claim_all(DicomReader(), tmp_path)
    assert not left
    assert {c.modalities for c in cases} == {(Modality.flair,), (None,)}
    unknown = next(c for c in cases if c.modalities == (None,))
    assert list(unknown.load().images) == ["unknown"]


def test_single_slice_series_is_a_2d_image(tmp_path: Path) -> None:
    vol, _ = blob()
    write_dicom(tmp_path / "one", vol[4:5], tags=PHI)
    (case,), _, _ = claim_all(DicomReader(), tmp_path)
    loaded = case.load()
    assert not loaded.is_volume and not loaded.orientation_known
    assert loaded.images["t1ce"].shape == vol.shape[1:]


def test_stray_dicom_files_are_rejected(tmp_path: Path) -> None:
    write_dicom(tmp_path / "s", blob()[0], tags=PHI)
    (tmp_path / "s" / "DICOMDIR.dcm").write_bytes(bytes(128) + b"DICM" + bytes(20))
    (tmp_path / "s" / "IM_noext").write_bytes(bytes(128) + b"DICM" + bytes(20))
    (tmp_path / "s" / "notes").write_bytes(b"plain text, no magic")
    cases, rejections, left = claim_all(DicomReader(), tmp_path)
    assert len(cases) == 1
    assert sorted(r.path.name for r in rejections) == ["DICOMDIR.dcm", "IM_noext"]
    assert all("unreadable DICOM header" in r.reason for r in rejections)
    assert [p.name for p in left] == ["notes"]


def test_thick_sagittal_series_keeps_its_plane(tmp_path: Path) -> None:
    """A sagittal series (5 mm between planes, 1 mm pixels) is not resliced into thin axials."""
    import SimpleITK as sitk

    ramp = np.arange(24 * 30, dtype=np.int16).reshape(24, 30)
    planes = np.stack([ramp + 1000 * i for i in range(8)]).astype(np.int16)
    folder = tmp_path / "sag"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.77"
    for i, plane in enumerate(planes):
        piece = sitk.GetImageFromArray(plane)  # rows run head to foot, columns front to back
        for tag, value in {
            **PHI,
            "0008|0060": "MR",
            "0008|103e": "SAG T2",
            "0020|000e": uid,
            "0020|000d": uid + ".9",
            "0020|0037": "0\\1\\0\\0\\0\\-1",
            "0020|0032": f"{5.0 * i}\\0\\0",
            "0028|0030": "1\\1",
            "0018|0050": "5",
            "0020|0013": str(i + 1),
            "0008|0018": f"{uid}.{i + 1}",
        }.items():
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"sag_{i + 1:03d}.dcm"))
        with locale_kept():  # GDCM leaves the C locale behind otherwise
            writer.Execute(piece)
    (case,), rejections, _ = claim_all(DicomReader(), tmp_path)
    assert not rejections
    loaded = case.load()
    assert loaded.plane == "sagittal"
    # One image per acquired plane, of the plane's own 24 x 30 pixels (not 8-pixel-wide axials).
    assert loaded.images["t2"].shape == (8, 24, 30)
    assert sorted(loaded.images["t2"][:, 12, 15]) == sorted(planes[:, 12, 15])
