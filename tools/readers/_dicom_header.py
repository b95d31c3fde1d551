"""One DICOM file's header, read with pydicom: what the series grouping needs, and every value
that identifies the patient under the DICOM PS3.15 Basic Application Level Confidentiality
Profile (Annex E, Table E.1-1).

pydicom decodes text with the file's declared ``SpecificCharacterSet`` (ISO_IR 100 Latin-1,
ISO 2022 IR 87 Japanese, GB18030, ...), so ``Müller^Jürgen`` and ``山田^太郎`` come back as the
names they are, not as the surrogate escapes a byte-level reader yields.

Which values count as identifying (collected into ``phi``, used only to scrub paths and text;
no tag value is ever copied into the store):

- every person name (VR ``PN``), date (``DA``), date-time (``DT``) and time (``TM``), anywhere in
  the header including sequences: the profile removes or replaces all of them;
- every UID (``UI``) that is not a registered DICOM UID (``1.2.840.10008.*``: SOP classes and
  transfer syntaxes name a kind of object, not a patient); the profile replaces instance UIDs;
- the profile's other identifying attributes, listed in :data:`IDENTIFYING` (ids, accession and
  order numbers, addresses, telephone numbers, institution, department, station, device serial
  numbers, age, weight, size, occupation, ...).

The profile also removes free-text descriptions and comments (``SeriesDescription``,
``StudyDescription``, ``ProtocolName``, ``ImageComments`` ...) because they *may* contain a name.
They are not collected as identifiers (their ordinary words, "T1 post", would erase sequence
names from every path); they are only mapped onto the modality vocabulary and never stored.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

# PS3.15 Table E.1-1 attributes with a D/Z/X/U action whose VR is not PN/DA/DT/TM/UI (those are
# collected by VR) and that are not free-text descriptions (see the module docstring).
IDENTIFYING = frozenset(
    {
        "AccessionNumber",
        "AdmissionID",
        "BranchOfService",
        "CassetteID",
        "ContentCreatorName",
        "CountryOfResidence",
        "CurrentPatientLocation",
        "DetectorID",
        "DeviceSerialNumber",
        "DistributionAddress",
        "FillerOrderNumberImagingServiceRequest",
        "GantryID",
        "GeneratorID",
        "HumanPerformerOrganization",
        "InstitutionAddress",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "InsurancePlanIdentification",
        "IssuerOfAdmissionID",
        "IssuerOfPatientID",
        "IssuerOfServiceEpisodeID",
        "MedicalRecordLocator",
        "MilitaryRank",
        "ModifyingDeviceID",
        "Occupation",
        "OrderCallbackPhoneNumber",
        "OrderEntererLocation",
        "OtherPatientIDs",
        "PatientAddress",
        "PatientAge",
        "PatientID",
        "PatientInstitutionResidence",
        "PatientReligiousPreference",
        "PatientSize",
        "PatientTelephoneNumbers",
        "PatientWeight",
        "PerformedLocation",
        "PerformedProcedureStepID",
        "PerformedStationAETitle",
        "PerformedStationName",
        "PersonAddress",
        "PersonTelephoneNumbers",
        "PlacerOrderNumberImagingServiceRequest",
        "PlateID",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence",
        "RequestedProcedureID",
        "RequestedProcedureLocation",
        "RequestingService",
        "ResponsibleOrganization",
        "ResultsIDIssuer",
        "ScheduledPatientInstitutionResidence",
        "ScheduledProcedureStepLocation",
        "ScheduledStationAETitle",
        "ScheduledStationName",
        "ScheduledStudyLocation",
        "ScheduledStudyLocationAETitle",
        "ServiceEpisodeID",
        "SourceApplicationEntityTitle",
        "StationName",
        "StudyID",
        "StudyIDIssuer",
        "VerifyingOrganization",
    }
)
_BY_VR = frozenset({"PN", "DA", "DT", "TM"})
_REGISTERED_UID = "1.2.840.10008."
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory: an index, not an image

# pydicom reports lenient parsing ("found implicit VR") as warnings and log records; they are
# not the user's to act on, and must not spill onto the terminal during ingestion.
logging.getLogger("pydicom").addHandler(logging.NullHandler())


class HeaderError(ValueError):
    """The file could not be parsed as DICOM."""


@dataclass(frozen=True)
class Header:
    """What one file says about itself (no pixel data read)."""

    path: Path
    sop_class: str
    modality: str
    series: str
    patient_id: str
    descriptions: tuple[str, str]
    """SeriesDescription and ProtocolName (used only to name the sequence; never stored)."""
    image_type: tuple[str, ...]
    echo: str
    shape: tuple[int, int] | None
    orientation: tuple[float, ...] | None
    position: tuple[float, float, float] | None
    separators: tuple[str, ...]
    """Attributes that tell repeated positions apart: acquisition, temporal position, trigger
    time, echo time (in that order of preference)."""
    phi: tuple[str, ...]

    @property
    def is_dicomdir(self) -> bool:
        return self.sop_class == DICOMDIR_CLASS


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    try:
        out = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _values(element: pydicom.DataElement) -> list[str]:
    value = element.value
    items = value if isinstance(value, pydicom.multival.MultiValue | list | tuple) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def identifying_values(ds: Dataset) -> list[str]:
    """Every identifying value in ``ds`` and its sequences (see the module docstring)."""
    out: dict[str, None] = {}
    datasets = [ds, getattr(ds, "file_meta", None) or Dataset()]
    for dataset in datasets:
        for element in dataset.iterall():
            vr = element.VR
            if vr in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                continue
            take = vr in _BY_VR or vr == "UI" or element.keyword in IDENTIFYING
            for text in _values(element) if take else ():
                if vr == "UI" and text.startswith(_REGISTERED_UID):
                    continue
                out.setdefault(text)
    return list(out)


def read_header(path: Path) -> Header:
    """Parse the header of ``path`` (stopping before the pixel data); :class:`HeaderError`
    when it is not DICOM."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are parsed lazily: warnings come on access
        return _read_header(path)


def _read_header(path: Path) -> Header:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise HeaderError(f"{type(exc).__name__}: {exc}".splitlines()[0][:160]) from exc
    meta = getattr(ds, "file_meta", None) or Dataset()
    sop_class = _text(ds, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    if not sop_class and "DirectoryRecordSequence" in ds:
        sop_class = DICOMDIR_CLASS
    if not sop_class and "Modality" not in ds and "Rows" not in ds:
        raise HeaderError("no DICOM attributes found")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    image_type = tuple(str(v).upper() for v in (ds.get("ImageType") or ()))
    return Header(
        path=path,
        sop_class=sop_class,
        modality=_text(ds, "Modality").upper(),
        series=_text(ds, "SeriesInstanceUID"),
        patient_id=_text(ds, "PatientID"),
        descriptions=(_text(ds, "SeriesDescription"), _text(ds, "ProtocolName")),
        image_type=image_type,
        echo=_text(ds, "EchoNumbers"),
        shape=(int(rows), int(cols)) if rows and cols else None,
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        position=_floats(ds, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        separators=tuple(
            _text(ds, k)
            for k in ("AcquisitionNumber", "TemporalPositionIdentifier", "TriggerTime", "EchoTime")
        ),
        phi=tuple(identifying_values(ds)),
    )
