"""DICOM series: a folder of slices (``.dcm``, ``.ima``, or extensionless with the ``DICM``
magic), grouped into series by GDCM; a folder holding several series gives one case each.

Identifying tag values (names, ids, institution, dates, UIDs) go into ``phi_strings`` only, so
that paths and text derived from the files can be scrubbed; the subject key is the PatientID,
hashed downstream. No tag value is copied into any other field: the modality is only the
vocabulary member a SeriesDescription maps to, and the dataset name comes from the folder
layout, scrubbed of the identifiers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import SimpleITK as sitk

from neuroonco.errors import UnreadableInput
from neuroonco.tools.phi import scrub_text
from neuroonco.tools.readers._common import (
    folder_label,
    itk_reason,
    modality_from_text,
    sitk_to_array,
    split_hint,
)
from neuroonco.tools.readers.base import (
    UNKNOWN_CHANNEL,
    LoadedCase,
    Rejection,
    SourceCase,
    check_loaded,
)

_SUFFIXES = {".dcm", ".dicom", ".ima"}
_PATIENT_ID = "0010|0020"
_DESCRIPTIONS = ("0008|103e", "0018|1030")  # SeriesDescription, ProtocolName
# Tags whose values identify a patient, a person or a visit.
_PHI_TAGS = (
    "0010|0010",  # PatientName
    "0010|0020",  # PatientID
    "0010|1000",  # OtherPatientIDs
    "0010|1001",  # OtherPatientNames
    "0010|0030",  # PatientBirthDate
    "0010|1040",  # PatientAddress
    "0010|2154",  # PatientTelephoneNumbers
    "0008|0050",  # AccessionNumber
    "0008|0080",  # InstitutionName
    "0008|0081",  # InstitutionAddress
    "0008|1040",  # InstitutionalDepartmentName
    "0008|1010",  # StationName
    "0008|0090",  # ReferringPhysicianName
    "0008|1050",  # PerformingPhysicianName
    "0008|1060",  # NameOfPhysiciansReadingStudy
    "0008|1070",  # OperatorsName
    "0032|1032",  # RequestingPhysician
    "0020|0010",  # StudyID
    "0008|0020",  # StudyDate
    "0008|0021",  # SeriesDate
    "0008|0022",  # AcquisitionDate
    "0008|0023",  # ContentDate
    "0020|000d",  # StudyInstanceUID
    "0020|000e",  # SeriesInstanceUID
)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in _SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _tags(first: Path) -> dict[str, str]:
    """The tag values this reader uses, read from one file's header (no pixel data)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(first))
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    values = {}
    for key in (*_PHI_TAGS, *_DESCRIPTIONS):
        if reader.HasMetaDataKey(key):
            try:
                values[key] = reader.GetMetaData(key).strip()
            except UnicodeDecodeError:
                continue
    return values


def load_series(files: tuple[Path, ...], channel: str) -> LoadedCase:
    """The series as one volume in LPS (z, y, x); a single-slice series as a 2D image."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise UnreadableInput(
            f"{files[0].parent}: cannot read the DICOM series ({itk_reason(exc)}); a slice may "
            "be truncated or corrupt: re-export the series"
        ) from exc
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        img = img[:, :, 0]
    pixels, oriented = sitk_to_array(img, files[0])
    return check_loaded(LoadedCase({channel: pixels}, orientation_known=oriented), files[0])


def _dataset(root: Path, folder: Path, phi: tuple[str, ...]) -> str:
    """The top folder under the root, else the root's name, whichever holds no identifier (TCIA
    style trees often name the top folder after the patient)."""
    parts = folder.relative_to(root).parts
    for name in (*parts[:1], root.name):
        if name and scrub_text(name, phi) == name:
            return name
    return "dicom"  # every candidate held an identifier


def _folder_key(root: Path, folder: Path) -> str:
    rel = folder.relative_to(root).as_posix()
    return root.name if rel == "." else rel


class DicomReader:
    name = "dicom"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        folders: dict[Path, list[Path]] = defaultdict(list)
        for path in sorted(unclaimed):
            if _is_dicom(path):
                folders[path.parent].append(path)
        for folder, candidates in folders.items():
            unclaimed.difference_update(candidates)
            yield from self._folder(root, folder, set(candidates))

    def _folder(
        self, root: Path, folder: Path, candidates: set[Path]
    ) -> Iterator[SourceCase | Rejection]:
        try:
            series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        except RuntimeError:
            series_ids = ()
        for series_id in series_ids:
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
            files = tuple(Path(n) for n in names if Path(n) in candidates)
            if not files:
                continue
            candidates.difference_update(files)
            try:
                tags = _tags(files[0])
            except RuntimeError as exc:
                reason = f"unreadable DICOM header ({itk_reason(exc)}); re-export the series"
                yield from (Rejection(f, reason) for f in files)
                continue
            yield self._case(root, folder, files, tags)
        for path in sorted(candidates):
            yield Rejection(
                path,
                "DICOM file not part of a readable image series (a DICOMDIR, report or corrupt "
                "slice?); export the series as image slices",
            )

    def _case(
        self, root: Path, folder: Path, files: tuple[Path, ...], tags: dict[str, str]
    ) -> SourceCase:
        phi = tuple(dict.fromkeys(v for k, v in tags.items() if k in _PHI_TAGS and v))
        modality = next(
            (m for key in _DESCRIPTIONS if (m := modality_from_text(tags.get(key, "")))), None
        )
        return SourceCase(
            source_format=self.name,
            dataset=_dataset(root, folder, phi),
            subject_key=tags.get(_PATIENT_ID) or _folder_key(root, folder),
            files=files,
            label=folder_label(root, files[0]),
            load=partial(load_series, files, modality.value if modality else UNKNOWN_CHANNEL),
            modalities=(modality,),
            phi_strings=phi,
            split_hint=split_hint(root, files[0]),
        )
