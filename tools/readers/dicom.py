"""DICOM series: files recognised by content (the ``DICM`` magic at byte 128, whatever their name:
``IM0001.dcm``, ``1.3.12.2.1107...0001``, the extensionless files of a DICOMDIR tree), headers
read with pydicom, one case per stackable MR series.

Only brain MRI is accepted: a series whose Modality is not ``MR`` (CT, RTDOSE, RTSTRUCT, SEG,
SR, ...) or whose SOP class is not an MR image (secondary captures, spectroscopy) is rejected,
naming what it is. A series is split into one stack per echo (and per acquisition when those
repeat positions); it is refused when its slices mix orientations (a localizer), still repeat a
position, or leave a gap. A DICOMDIR is an index and is skipped: the files it lists are read on
their own.

Identifying values (see :mod:`._dicom_header`: the PS3.15 Basic Profile) go into
``phi_strings`` only, so that paths and text derived from the files can be scrubbed; the subject
key is the PatientID, hashed downstream. No tag value is copied into any other field.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from neuroonco.errors import UnreadableInput
from neuroonco.tools.locale_guard import locale_kept
from neuroonco.tools.phi import scrub_text
from neuroonco.tools.readers._common import (
    IMAGE_2D_SUFFIXES,
    folder_label,
    itk_reason,
    modality_from_text,
    sitk_case,
    sitk_to_array,
    split_hint,
    volume_suffix,
)
from neuroonco.tools.readers.base import (
    UNKNOWN_CHANNEL,
    LoadedCase,
    Rejection,
    SourceCase,
    check_loaded,
)

if TYPE_CHECKING:  # pydicom is imported only once a DICOM file is found (0.3 s of start-up)
    from neuroonco.tools.readers._dicom_header import Header

_SUFFIXES = {".dcm", ".dicom", ".ima"}
# Files with these suffixes are another format: not opened to look for the DICOM magic.
_OTHER_SUFFIXES = IMAGE_2D_SUFFIXES | {".mat", ".txt", ".json", ".csv", ".tsv", ".md", ".yaml"}
_MAGIC_OFFSET = 128
_MR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
}
_MODALITY_NAMES = {
    "CT": "computed tomography",
    "PT": "PET",
    "NM": "nuclear medicine",
    "US": "ultrasound",
    "CR": "computed radiography",
    "DX": "digital radiography",
    "MG": "mammography",
    "XA": "X-ray angiography",
    "RTDOSE": "radiotherapy dose",
    "RTSTRUCT": "radiotherapy structure set",
    "RTPLAN": "radiotherapy plan",
    "RTIMAGE": "radiotherapy image",
    "SEG": "segmentation object",
    "SR": "structured report",
    "KO": "key object selection",
    "PR": "presentation state",
    "DOC": "document",
    "OT": "other",
    "SC": "secondary capture",
    "REG": "registration",
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_ORIENTATION_TOL = 1e-3  # direction cosines: ~0.06 degrees
_POSITION_TOL = 1e-2  # mm along the slice normal
_SPACING_TOL = 0.1  # relative deviation from the median slice step


def has_dicom_magic(path: Path) -> bool:
    """Whether ``path`` carries the ``DICM`` magic at byte 128 (every DICOM Part 10 file)."""
    try:
        with path.open("rb") as fh:
            return fh.read(_MAGIC_OFFSET + 4)[_MAGIC_OFFSET:] == b"DICM"
    except OSError:
        return False


def _is_dicom(path: Path) -> bool:
    """A DICOM file by suffix, else by content; names like ``1.3.12.2.1107...0001`` carry a
    numeric "suffix", so only the suffixes of other formats spare the read."""
    suffix = path.suffix.lower()
    if suffix in _SUFFIXES:
        return True
    if suffix in _OTHER_SUFFIXES or volume_suffix(path):
        return False
    return has_dicom_magic(path)


@contextmanager
def _itk_names(files: tuple[Path, ...]) -> Iterator[list[str]]:
    """File names ITK can open: a name that is not UTF-8 (Latin-1 bytes, kept by Python as
    surrogate escapes) cannot cross into ITK, so such a series is read through links with plain
    names in a temporary folder."""
    names = [str(f) for f in files]
    if not any(_undecodable(n) for n in names):
        yield names
        return
    with tempfile.TemporaryDirectory(prefix="neuroonco-dicom-") as tmp:
        links = []
        for i, name in enumerate(names):
            link = os.path.join(tmp, f"{i:06d}.dcm")
            os.symlink(os.fsencode(name), link)
            links.append(link)
        yield links


def _undecodable(name: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in name)


def load_series(files: tuple[Path, ...], channel: str) -> LoadedCase:
    """The series (files in slice order) as one volume in LPS (z, y, x); one slice as 2D."""
    reader = sitk.ImageSeriesReader()
    try:
        with _itk_names(files) as names, locale_kept():
            reader.SetFileNames(names)
            img = reader.Execute()
    except RuntimeError as exc:
        raise UnreadableInput(
            f"{files[0].parent}: cannot read the DICOM series ({itk_reason(exc)}); a slice may "
            "be truncated or corrupt: re-export the series"
        ) from exc
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        pixels, oriented = sitk_to_array(img[:, :, 0], files[0])
        return check_loaded(LoadedCase({channel: pixels}, orientation_known=oriented), files[0])
    # Same geometry rules as NIfTI volumes: thick sagittal/coronal stacks keep their plane.
    return sitk_case(img, channel, files[0])


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


def _not_mr(header: Header) -> str | None:
    """Why a file is not part of an MR image series, or None when it is."""
    modality = header.modality
    if modality != "MR":
        named = _MODALITY_NAMES.get(modality)
        what = f"Modality {modality} ({named})" if named else f"Modality {modality or 'missing'}"
        return f"DICOM {what}, not MR: only MRI is ingested; leave this series out of the source"
    if header.sop_class.startswith(_SECONDARY_CAPTURE):
        return (
            "DICOM secondary capture (a screenshot or derived picture, Modality MR): not an MR "
            "acquisition; export the original MR series instead"
        )
    if header.sop_class and header.sop_class not in _MR_CLASSES:
        return (
            f"DICOM object of SOP class {header.sop_class} (Modality MR) is not an MR image "
            "(spectroscopy, raw data?); only MR image series are ingested"
        )
    if header.shape is None:
        return "DICOM file holds no image (Rows/Columns missing); only MR image series are ingested"
    return None


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    return np.cross(row, col)


class _Refused(Exception):
    """A group of slices that cannot be stacked, with the reason."""


def _split_by(headers: list[Header], key) -> list[list[Header]]:
    groups: dict[object, list[Header]] = defaultdict(list)
    for h in headers:
        groups[key(h)].append(h)
    return list(groups.values())


def _stacks(headers: list[Header]) -> list[list[Header]]:
    """The series as stackable groups in slice order: split per echo and image size, per
    acquisition when positions repeat; :class:`_Refused` when no split makes a clean stack."""
    if len(headers) == 1:
        return [headers]
    if any(h.position is None or h.orientation is None for h in headers):
        raise _Refused(
            f"{len(headers)} slices without ImagePositionPatient/ImageOrientationPatient cannot "
            "be stacked into a volume; export the series with its geometry"
        )
    first = np.asarray(headers[0].orientation)
    if any(np.abs(np.asarray(h.orientation) - first).max() > _ORIENTATION_TOL for h in headers):
        n = len({tuple(np.round(h.orientation, 3)) for h in headers})  # type: ignore[arg-type]
        raise _Refused(
            f"series mixes {n} slice orientations (a localizer/scout?): not one volume; "
            "leave it out, or export each plane as its own series"
        )
    if any("LOCALIZER" in h.image_type for h in headers):
        raise _Refused("series is a localizer (ImageType LOCALIZER): not a diagnostic volume")
    stacks = []
    for group in _split_by(headers, lambda h: (h.echo, h.shape)):
        stacks.extend(_ordered(group))
    return stacks


def _ordered(headers: list[Header]) -> list[list[Header]]:
    """One group of one orientation, echo and size, sorted along its normal and checked."""
    normal = _normal(headers[0].orientation)  # type: ignore[arg-type]

    def depth(h: Header) -> float:
        return float(np.dot(h.position, normal))  # type: ignore[arg-type]

    positions = np.round(np.array([depth(h) for h in headers]) / _POSITION_TOL)
    if len(set(positions.tolist())) < len(headers):
        # Repeated positions: tell them apart by acquisition, time point, trigger or echo time.
        for i in range(len(headers[0].separators)):
            parts = _split_by(headers, lambda h, i=i: h.separators[i])
            if len(parts) > 1 and all(_unique_positions(p, depth) for p in parts):
                return [stack for p in parts for stack in _ordered(p)]
        repeated = len(headers) - len(set(positions.tolist()))
        raise _Refused(
            f"{repeated} of {len(headers)} slices repeat a position already filled (repeated "
            "acquisitions or time points without distinguishing tags); export one acquisition "
            "per series"
        )
    ordered = sorted(headers, key=depth)
    steps = np.diff([depth(h) for h in ordered])
    if len(steps):
        step = float(np.median(steps))
        worst = int(np.abs(steps - step).argmax())
        if abs(steps[worst] - step) > _SPACING_TOL * step:
            missing = f"{steps[worst] / step - 1:.1f} slices missing" if steps[worst] > step else ""
            raise _Refused(
                f"uneven slice spacing: {steps[worst]:.2f} mm between slices {worst + 1} and "
                f"{worst + 2} where the series steps {step:.2f} mm"
                f"{f' ({missing})' if missing else ''}; the series is incomplete or mixed: "
                "re-export the complete series"
            )
    return [ordered]


def _unique_positions(headers: list[Header], depth) -> bool:
    values = [round(depth(h) / _POSITION_TOL) for h in headers]
    return len(set(values)) == len(values)


class DicomReader:
    name = "dicom"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        folders: dict[Path, list[Path]] = defaultdict(list)
        for path in sorted(unclaimed):
            if _is_dicom(path):
                folders[path.parent].append(path)
        for folder, candidates in folders.items():
            unclaimed.difference_update(candidates)
            yield from self._folder(root, folder, candidates)

    def _folder(
        self, root: Path, folder: Path, candidates: list[Path]
    ) -> Iterator[SourceCase | Rejection]:
        from neuroonco.tools.readers import _dicom_header

        series: dict[str, list[Header]] = defaultdict(list)
        for path in candidates:
            try:
                header = _dicom_header.read_header(path)
            except _dicom_header.HeaderError as exc:
                yield Rejection(
                    path,
                    f"unreadable DICOM header ({exc}); the file may be truncated or not "
                    "DICOM: re-export the series or remove the file",
                )
                continue
            if header.is_dicomdir:
                continue  # an index of the tree: the files it lists are read on their own
            if (reason := _not_mr(header)) is not None:
                yield Rejection(path, reason, phi_strings=header.phi)
                continue
            series[header.series or f"no-uid:{path.name}"].append(header)
        for headers in series.values():
            phi = tuple(dict.fromkeys(v for h in headers for v in h.phi))
            try:
                stacks = _stacks(headers)
            except _Refused as exc:
                yield from (Rejection(h.path, str(exc), phi_strings=phi) for h in headers)
                continue
            for stack in stacks:
                yield self._case(root, folder, stack, phi)

    def _case(
        self, root: Path, folder: Path, headers: list[Header], phi: tuple[str, ...]
    ) -> SourceCase:
        files = tuple(h.path for h in headers)
        modality = next(
            (m for text in headers[0].descriptions if (m := modality_from_text(text))), None
        )
        return SourceCase(
            source_format=self.name,
            dataset=_dataset(root, folder, phi),
            subject_key=headers[0].patient_id or _folder_key(root, folder),
            files=files,
            label=folder_label(root, files[0]),
            load=partial(load_series, files, modality.value if modality else UNKNOWN_CHANNEL),
            modalities=(modality,),
            phi_strings=phi,
            split_hint=split_hint(root, files[0]),
        )
