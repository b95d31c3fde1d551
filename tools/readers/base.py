"""The common shape every source reader produces.

A reader *claims* files under a source root by naming and content, and yields one
:class:`SourceCase` per case (a 3D study, or a single 2D image). Arrays are loaded lazily, one
case at a time, so ingestion streams and memory does not grow with the number of cases.

Canonical orientation (asserted by :func:`check_loaded`):

- 3D arrays are ``(z, y, x)`` = (inferior->superior, anterior->posterior, right->left), i.e. the
  volume reoriented to ITK ``LPS`` and read with ``GetArrayFromImage``. An axial slice
  ``vol[z]`` therefore shows the patient's right on the image's left (radiological convention)
  and anterior at the top.
- 2D arrays are ``(y, x)`` as stored; their orientation is unknown and radiological convention
  is assumed (``orientation_known=False``).
- Intensity volumes keep their stored numeric type (int16 for most NIfTI: half the memory of
  float32), scaled ones and 2D images are float32; masks are uint8 label maps with the same shape
  (0 = background). Consumers convert the slices they use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality

MaskKind = Literal["segmentation", "box"]

# Key for the single channel of a 2D image whose sequence is unknown.
UNKNOWN_CHANNEL = "unknown"


@dataclass
class LoadedCase:
    """The arrays of one case in canonical orientation."""

    images: dict[str, np.ndarray]
    """Channel -> intensity array (numeric; see the module docstring). Keys are
    :class:`Modality` values, or ``UNKNOWN_CHANNEL``."""
    mask: np.ndarray | None = None
    orientation_known: bool = False
    mask_labels: dict[int, str] = field(default_factory=dict)
    """Sub-region names of the mask labels, e.g. {1: "necrotic_core", 2: "edema"}."""

    @property
    def is_volume(self) -> bool:
        return next(iter(self.images.values())).ndim == 3


@dataclass
class SourceCase:
    """One case found under a source root; ``load()`` reads its arrays on demand."""

    source_format: str
    """Reader name: brats2021, brats2023, figshare_mat, class_folder, image_mask_pairs, yolo,
    dicom, nifti."""
    dataset: str
    """Name of the collection, e.g. "BraTS2021" or the top folder of a Kaggle set."""
    subject_key: str
    """Raw subject identifier (case id, PID, PatientID). Hashed with a salt before storage;
    never written anywhere as is."""
    files: tuple[Path, ...]
    """Every file this case consumes, absolute. files[0] is the primary one (its path relative to
    the source root becomes ``source_path``)."""
    label: Diagnosis | None
    load: Callable[[], LoadedCase]
    modalities: tuple[Modality | None, ...] = ()
    mask_kind: MaskKind | None = None
    phi_strings: tuple[str, ...] = ()
    """Identifiers read from the file (e.g. DICOM PatientName) that must be scrubbed from any
    path or text derived from it."""
    channel_files: dict[str, Path] = field(default_factory=dict)
    """Channel (modality) -> the file it was read from, for multi-file cases (BraTS)."""
    split_hint: str | None = None
    """"train"/"test" when the source layout says so (Training/, Testing/)."""


@dataclass(frozen=True)
class Rejection:
    """A file that was looked at and not ingested, with a reason a person can act on."""

    path: Path
    reason: str
    phi_strings: tuple[str, ...] = ()
    """Identifiers the file itself holds (a rejected DICOM's names), scrubbed like a case's."""


class Reader(Protocol):
    """A layout reader: takes the files it recognises out of ``unclaimed``."""

    name: str

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        """Yield cases and rejections for the files it recognises, taken from ``unclaimed``."""
        ...


def check_loaded(case: LoadedCase, where: Path) -> LoadedCase:
    """Assert the canonical invariants; raise :class:`UnreadableInput` naming the file otherwise."""
    if not case.images:
        raise UnreadableInput(f"{where}: no image data")
    shapes = {name: arr.shape for name, arr in case.images.items()}
    first = next(iter(case.images.values()))
    if first.ndim not in (2, 3):
        raise UnreadableInput(
            f"{where}: {first.ndim}D data (shape {first.shape}); only 2D images and 3D volumes "
            "are supported. Split 4D series into one 3D volume per time point first."
        )
    if len(set(shapes.values())) != 1:
        raise UnreadableInput(f"{where}: sequences of one case differ in shape: {shapes}")
    for name, arr in case.images.items():
        if arr.size == 0:
            raise UnreadableInput(f"{where}: channel {name!r} is empty")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise UnreadableInput(
                f"{where}: channel {name!r} has {bad} NaN/inf voxels; fix or drop the file"
            )
        if float(arr.max()) == float(arr.min()):
            raise UnreadableInput(f"{where}: channel {name!r} is constant (blank image)")
    if case.mask is not None and case.mask.shape != first.shape:
        raise UnreadableInput(
            f"{where}: mask shape {case.mask.shape} differs from image shape {first.shape}; "
            "the mask must be drawn on the same grid as its image"
        )
    return case
