"""The common shape every source reader produces.

A reader *claims* files under a source root by naming and content, and yields one
:class:`SourceCase` per case (a 3D study, or a single 2D image). Arrays are loaded lazily, one
case at a time, so ingestion streams and memory does not grow with the number of cases.

Canonical orientation (asserted by :func:`check_loaded`):

- 3D arrays are ``(slice, row, col)`` in ``LoadedCase.plane``. For axial (most volumes) that is
  ``(z, y, x)`` = (inferior->superior, anterior->posterior, right->left), i.e. the volume
  reoriented to ITK ``LPS`` and read with ``GetArrayFromImage``: an axial slice ``vol[z]`` shows
  the patient's right on the image's left (radiological convention) and anterior at the top.
  A stack of thick sagittal or coronal slices stays in its plane (see
  :func:`._common.choose_plane`): coronal slices show superior at the top and the patient's right
  on the left, sagittal ones superior at the top and anterior on the left.
- 2D arrays are ``(y, x)``. A 2D NIfTI file is shown by its header in that convention for its
  plane (``orientation_known=True``); other 2D images as stored, their orientation unknown and
  radiological convention assumed (``orientation_known=False``).
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
    plane: str | None = None
    """"axial", "coronal" or "sagittal" when the header says (volumes: the plane ``images`` are
    sliced in along axis 0; 2D: the plane of the image); None for 2D images of unknown
    orientation."""
    pixel_spacing: tuple[float, float] | None = None
    """Millimetres per (row, column) of a slice, when the header says."""

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
        if _constant(arr):
            raise UnreadableInput(f"{where}: channel {name!r} is constant (blank image)")
    if first.ndim == 3:
        for name, arr in case.images.items():
            _refuse_label_map(arr, f"{where.name}: channel {name!r}")
    if case.mask is not None and case.mask.shape != first.shape:
        raise UnreadableInput(
            f"{where}: mask shape {case.mask.shape} differs from image shape {first.shape}; "
            "the mask must be drawn on the same grid as its image"
        )
    return case


def _constant(arr: np.ndarray) -> bool:
    """Whether every voxel has one value; a strided sample settles almost every real image
    without two full passes over the volume."""
    sample = arr[tuple(slice(None, None, max(1, n // 16)) for n in arr.shape)]
    if sample.size and float(sample.max()) != float(sample.min()):
        return False
    return float(arr.max()) == float(arr.min())


# An intensity volume has hundreds of grey levels; one with this few integral values is a
# segmentation given where an image was expected.
LABEL_MAP_MAX_VALUES = 12


def _refuse_label_map(arr: np.ndarray, where: str) -> None:
    """Refuse a volume that is a label map (few integral values) rather than an MR image."""
    step = tuple(max(1, s // 48) for s in arr.shape)  # a strided sample: no copy of the volume
    sample = arr[tuple(slice(None, None, k) for k in step)]
    values = np.unique(sample)
    if len(values) <= LABEL_MAP_MAX_VALUES and np.all(values == np.rint(values)):
        full = np.unique(arr)
        if len(full) <= LABEL_MAP_MAX_VALUES and np.all(full == np.rint(full)):
            raise UnreadableInput(
                f"{where} holds only the values {', '.join(f'{v:g}' for v in full)}: a label map "
                "(segmentation), not an MR image; name it like its image with a _seg suffix "
                "(or put it in labelsTr/) so it is read as that image's mask"
            )
