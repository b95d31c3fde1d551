"""Test trees built from the DICOM files the pydicom wheel ships (``pydicom/data/test_files`` and
``charset_files``), read from the installed package only: nothing is downloaded.

Series are made by re-writing a real MR file's tags with pydicom: positions along its own slice
normal, fresh instance UIDs, and planted identifiers (names in any declared character set,
ids, dates), so every test input is a real encoder's output with a real header.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

DATA = Path(pydicom.data.__file__).parent
TEST_FILES = DATA / "test_files"
CHARSET_FILES = DATA / "charset_files"


def shipped(name: str) -> Path:
    """A file of the installed wheel, e.g. ``MR_small.dcm`` or ``charset_files/chrH31.dcm``."""
    path = DATA / name if "/" in name else TEST_FILES / name
    assert path.is_file(), f"{name} is not in the installed pydicom wheel"
    return path


def copy_shipped(name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shipped(name), dest)
    return dest


def charset_name(name: str) -> tuple[str | list[str], str]:
    """The declared character set and decoded PatientName of a shipped charset file."""
    ds = pydicom.dcmread(shipped(f"charset_files/{name}"), stop_before_pixels=True)
    return ds.SpecificCharacterSet, str(ds.PatientName)


def mr_series(
    folder: Path,
    n: int = 6,
    *,
    tags: dict[str, object] | None = None,
    step: float = 1.0,
    skip: tuple[int, ...] = (),
    name: Callable[[Dataset, int], str] = lambda ds, i: f"IM{i + 1:04d}.dcm",
    series_uid: str | None = None,
    per_slice: Callable[[Dataset, int], None] | None = None,
) -> list[Path]:
    """``n`` slices of ``MR_small.dcm`` stacked along its slice normal, ``step`` mm apart
    (positions in ``skip`` left out), with ``tags`` (pydicom keywords) planted in every file."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(shipped("MR_small.dcm"))
    orientation = np.array([float(v) for v in base.ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.array([float(v) for v in base.ImagePositionPatient])
    series_uid = series_uid or generate_uid()
    pixels = base.pixel_array
    paths = []
    for i in range(n):
        if i in skip:
            continue
        ds = pydicom.dcmread(shipped("MR_small.dcm"))
        for keyword, value in (tags or {}).items():
            setattr(ds, keyword, value)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in origin + i * step * normal]
        # Each slice a little different, so the stack is a volume and not one image repeated.
        ds.PixelData = np.roll(pixels, i, axis=1).astype(pixels.dtype).tobytes()
        if per_slice is not None:
            per_slice(ds, i)
        path = folder / name(ds, i)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def rewrite(src: str, dest: Path, **tags: object) -> Path:
    """A shipped file with some tags replaced (e.g. ``Modality="NM"``), written to ``dest``."""
    ds = pydicom.dcmread(shipped(src))
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest
