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
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

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
    tag = tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return ""
    if _vr(ds, tag) in _ASCII_VRS and (values := _ascii_values(ds, tag)) is not None:
        return "\\".join(values)
    value = ds[tag].value
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in _text(ds, keyword).split("\\"))
    except ValueError:
        return None
    return out if len(out) == n else None


def _values(element: pydicom.DataElement) -> list[str]:
    value = element.value
    items = value if isinstance(value, pydicom.multival.MultiValue | list | tuple) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


_IDENTIFYING_TAGS = frozenset(tag_for_keyword(k) for k in IDENTIFYING) - {None}
_ASCII_VRS = frozenset({"DA", "DT", "TM", "UI", "IS", "DS", "AS", "CS"})
_SKIPPED_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})


def _vr(ds: Dataset, tag: BaseTag) -> str | None:
    raw = ds.get_item(tag)  # the element as read: its value is not decoded yet
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    try:
        return dictionary_VR(tag)
    except KeyError:  # a private tag of an implicit-VR file: nothing the profile lists
        return None


def _collect(ds: Dataset, out: dict[str, None]) -> None:
    # Only the elements that identify are decoded (decoding every value would triple the
    # time discovery spends per file).
    for tag in list(ds.keys()):
        vr = _vr(ds, tag)
        if vr is None or vr in _SKIPPED_VRS:
            continue
        if vr == "SQ":
            for item in ds[tag].value or ():
                _collect(item, out)
            continue
        if vr in _BY_VR or vr == "UI" or tag in _IDENTIFYING_TAGS:
            texts = _ascii_values(ds, tag) if vr in _ASCII_VRS else None
            for text in _values(ds[tag]) if texts is None else texts:
                if not (vr == "UI" and text.startswith(_REGISTERED_UID)):
                    out.setdefault(text)


def _ascii_values(ds: Dataset, tag: BaseTag) -> list[str] | None:
    """The values of an ASCII-only element (dates, times, UIDs, numbers) straight from its raw
    bytes: pydicom's conversion (with validation) costs more than the whole file read."""
    raw = ds.get_item(tag)
    data = getattr(raw, "value", None)
    if not isinstance(data, bytes):
        return None  # already decoded
    text = data.decode("latin-1").strip("\x00 ")
    return [v.strip("\x00 ") for v in text.split("\\") if v.strip("\x00 ")]


def identifying_values(ds: Dataset) -> list[str]:
    """Every identifying value in ``ds``, its file meta and its sequences (see the module
    docstring)."""
    out: dict[str, None] = {}
    _collect(ds, out)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        _collect(meta, out)
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
    rows, cols = ds.get("Rows"), ds.get("Columns")  # US: binary, cheap to convert
    image_type = tuple(v.upper() for v in _text(ds, "ImageType").split("\\") if v)
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
