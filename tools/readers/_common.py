"""Helpers shared by the layout readers: file kinds, array reading, and path-derived hints.

Reading follows the canonical orientation of :mod:`neuroonco.tools.readers.base`: a 3D volume is
reoriented to ``LPS`` (skipped when already so) and copied once into a float32 ``(z, y, x)``
array, read with SimpleITK, or for NIfTI by :mod:`._nifti_io` (ITK would hide NaNs and
truncation); a 2D image is read with Pillow as stored. Masks become uint8.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality, normalise, normalise_label
from neuroonco.tools.readers._nifti_io import lps_spacing, read_nifti, to_lps
from neuroonco.tools.readers.base import LoadedCase, check_loaded
from neuroonco.tools.readers.reasons import itk_reason

__all__ = ["itk_reason"]  # re-exported for the DICOM reader

# ITK prints its warnings (odd qform/sform pairs, GDCM notes) straight to the terminal, and
# Pillow warns through `warnings` (palette transparency, EXIF, large images): what matters of
# them reaches the user as a rejection reason, never as text spilled over the progress display.
sitk.ProcessObject.SetGlobalWarningDisplay(False)
warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

IMAGE_2D_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".webp"})

_TRAIN = {"train", "training", "trainingdata", "trainset", "trainingset"}
_TEST = {"test", "testing", "testingdata", "testset", "testingset"}
_VAL = {"val", "valid", "validation", "validationdata", "validationset", "dev"}
_STRUCTURAL = {"images", "image", "imgs", "img", "masks", "mask", "labels", "label", "data"}

# ITU-R 601-2 luma weights, the ones Pillow's "L" conversion uses.
# A lossless 2D mask whose values stay at or below this is a label map (sub-regions kept).
MAX_MASK_LABEL = 4
# A volume mask with more distinct labels than this is an image or probability map, not a
# segmentation (BraTS uses 3-4 labels, the Decathlon at most 3, multi-structure sets ~15).
MAX_VOLUME_LABELS = 20
# Grids whose origins differ by less than this share of 100 finest voxels... see Grid.matches:
# 1e-3 relative spacing, 1e-3 direction cosine, 0.1 voxel origin.
GRID_TOLERANCE = 1e-3
# A mask placed by its header may lose this share of its lesion off the image's edge (partial
# voxels at a boundary); beyond it the mask is refused.
MASK_OUTSIDE_LIMIT = 0.05
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_image_2d(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_2D_SUFFIXES


def volume_suffix(path: Path) -> str | None:
    """The volume extension of ``path`` (``.nii.gz`` counts as one), or None."""
    name = path.name.lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), None)


def strip_suffix(path: Path) -> str:
    """File name without its (possibly double) extension."""
    suffix = volume_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def rel_parts(root: Path, path: Path) -> tuple[str, ...]:
    """Folder names between ``root`` and ``path`` (the file name excluded)."""
    try:
        return path.relative_to(root).parts[:-1]
    except ValueError:
        return ()


def split_of(name: str) -> str | None:
    """The split ("train", "test" or "val") a folder name states, e.g. MICCAI_..._TrainingData."""
    for token in re.split(r"[^a-z]+", name.lower()):
        if token in _TRAIN:
            return "train"
        if token in _TEST:
            return "test"
        if token in _VAL:
            return "val"
    return None


def split_hint(root: Path, path: Path) -> str | None:
    """The nearest split folder above ``path``."""
    return next((s for s in map(split_of, reversed(rel_parts(root, path))) if s), None)


def folder_label(root: Path, path: Path) -> Diagnosis | None:
    """The diagnosis named by the nearest class folder above ``path`` (glioma/, no/, ...)."""
    return next((d for d in map(normalise_label, reversed(rel_parts(root, path))) if d), None)


def _structural(name: str) -> bool:
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    return bool(squashed in _STRUCTURAL or split_of(name) or normalise_label(name))


def dataset_name(root: Path, path: Path) -> str:
    """The top folder under ``root`` when it names a collection, else the root's own name."""
    parts = rel_parts(root, path)
    if parts and not _structural(parts[0]):
        return parts[0]
    return root.name or "source"


def subject_from_path(root: Path, path: Path) -> str:
    """A subject key for a 2D file: its relative path without extension, or its folder when the
    file name starts with the name of a folder that is not a class/split folder (one folder per
    patient, as in Kaggle LGG)."""
    rel = path.relative_to(root)
    stem = strip_suffix(path)
    folder = path.parent.name
    if len(rel.parts) > 1 and stem.startswith(folder + "_") and not _structural(folder):
        return rel.parent.as_posix()
    return rel.with_name(stem).as_posix()


def _modality_word(word: str) -> Modality | None:
    try:
        return normalise(Modality, word)
    except ValueError:
        return None


_CONTRAST_WORDS = {"post", "gd", "gad", "gado", "gadolinium", "contrast", "ce", "c", "postcontrast"}
_PRIORITY = (Modality.flair, Modality.t1ce, Modality.t2, Modality.t1)


def modality_from_text(text: str) -> Modality | None:
    """The MR sequence named in a file name or SeriesDescription ("AX T1 POST GD", "sub_FLAIR")."""
    lowered = text.lower()
    # T2* / susceptibility sequences are not T2-weighted in the sense of the vocabulary.
    if re.search(r"t2\s*\*|t2star|\bswi\b|\bswan\b", lowered):
        return None
    lowered = re.sub(r"\+\s*(c|gd|gad|contrast)\b", " post ", lowered)
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    found: set[Modality] = set()
    for size in (3, 2, 1):
        for i in range(len(tokens) - size + 1):
            if (m := _modality_word("".join(tokens[i : i + size]))) is not None:
                found.add(m)
    best = next((m for m in _PRIORITY if m in found), None)
    if best is Modality.t1 and _CONTRAST_WORDS & set(tokens):
        return Modality.t1ce
    return best


def read_sitk(path: Path) -> sitk.Image:
    """Read any SimpleITK-supported file, turning its errors into :class:`UnreadableInput`."""
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise UnreadableInput(
            f"{path.name}: SimpleITK cannot read it ({itk_reason(exc)}); check that the file is "
            "a complete image in the format its extension names, or remove it"
        ) from exc


def sitk_to_array(img: sitk.Image, where: Path, *, mask: bool = False) -> tuple[np.ndarray, bool]:
    """Canonical array of a SimpleITK image and whether its orientation is known.

    3D images are reoriented to LPS (skipped when already LPS) and returned as ``(z, y, x)``;
    2D images are returned as stored. One copy, in the stored numeric type (uint8 for masks).
    """
    img = _scalar_3d(img, where)
    oriented = img.GetDimension() == 3
    if oriented:
        current = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())
        if current != "LPS":
            img = sitk.DICOMOrient(img, "LPS")
    view = sitk.GetArrayViewFromImage(img)
    return (to_mask(view, where) if mask else np.array(view)), oriented


def _scalar_3d(img: sitk.Image, where: Path) -> sitk.Image:
    """``img`` checked to be scalar and 2D/3D (a singleton 4th axis dropped)."""
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise UnreadableInput(
            f"{where.name}: {img.GetNumberOfComponentsPerPixel()} components per voxel; only "
            "scalar (grayscale) volumes are supported"
        )
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() not in (2, 3):
        raise UnreadableInput(
            f"{where.name}: {img.GetDimension()}D data (size {img.GetSize()}); only 2D images and "
            "3D volumes are supported. Split 4D series into one 3D volume per time point first."
        )
    return img


def to_mask(values: np.ndarray, where: Path) -> np.ndarray:
    """A label map as uint8; refuses what is not one (probability maps, images used as masks).

    Integral values 0..255 with at most :data:`MAX_VOLUME_LABELS` distinct labels pass (float
    files holding whole numbers included); fractions, values beyond 0..255 and many distinct
    values are refused with the reason.
    """
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise UnreadableInput(f"{where.name}: mask has NaN/inf values; fix or drop the file")
        rounded = np.rint(values)
        if values.size and float(np.abs(values - rounded).max()) > 1e-3:
            raise UnreadableInput(
                f"{where.name}: not a label map: fractional values between "
                f"{float(values.min()):g} and {float(values.max()):g} (a probability map?); "
                "threshold it into integer labels (e.g. p > 0.5 -> 1) or remove it"
            )
        values = rounded
    if values.size and (values.min() < 0 or values.max() > 255):
        raise UnreadableInput(
            f"{where.name}: not a label map: values {values.min():g}..{values.max():g} are outside "
            "0..255 (an intensity image used as a mask?); give the segmentation file instead"
        )
    labels = values.astype(np.uint8)
    # Counted on an even-strided sample (~100k voxels, no copy of the volume): an image or
    # probability map shows its hundreds of values in any sample.
    step = tuple(max(1, round((labels.size / 100_000) ** (1 / labels.ndim))) for _ in labels.shape)
    sample = labels[tuple(slice(None, None, k) for k in step)]
    counts = np.bincount(sample.reshape(-1), minlength=256) if sample.size else np.zeros(1)
    distinct = int(np.count_nonzero(counts[1:]))
    if distinct > MAX_VOLUME_LABELS:
        raise UnreadableInput(
            f"{where.name}: not a label map: {distinct}+ distinct non-zero values (at most "
            f"{MAX_VOLUME_LABELS} labels expected; an image or probability map used as a mask?); "
            "give the segmentation file instead"
        )
    return labels


@dataclass(frozen=True)
class Grid:
    """Where a stored array lies in the patient (ITK conventions: LPS millimetres)."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    """Along index axes i, j, k (numpy axes 2, 1, 0 of a ``(z, y, x)`` array)."""
    direction: tuple[float, ...]
    """3x3 row-major; column j is index axis j's unit vector."""

    def matches(self, other: Grid) -> bool:
        """Same placement within :data:`GRID_TOLERANCE` (a share of the finest voxel size for the
        origin, relative for spacing, absolute for the direction cosines)."""
        finest = min(*self.spacing, *other.spacing)
        return (
            np.allclose(self.spacing, other.spacing, rtol=GRID_TOLERANCE, atol=0)
            and np.allclose(self.direction, other.direction, rtol=0, atol=GRID_TOLERANCE)
            and float(np.max(np.abs(np.subtract(self.origin, other.origin))))
            <= GRID_TOLERANCE * 100 * finest
        )

    def physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """LPS positions (n, 3) of voxel indices given as (n, 3) ``(z, y, x)`` rows."""
        ijk = index_zyx[:, ::-1].astype(float) * np.asarray(self.spacing)
        return ijk @ np.asarray(self.direction).reshape(3, 3).T + np.asarray(self.origin)

    def index(self, points: np.ndarray) -> np.ndarray:
        """Continuous ``(z, y, x)`` indices (n, 3) of LPS positions (n, 3)."""
        cosines = np.asarray(self.direction).reshape(3, 3)
        ijk = np.linalg.solve(cosines, (points - np.asarray(self.origin)).T).T
        return (ijk / np.asarray(self.spacing))[:, ::-1]

    def image(self, array: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetOrigin(self.origin)
        img.SetSpacing(self.spacing)
        img.SetDirection(self.direction)
        return img

    @classmethod
    def of(cls, img: sitk.Image) -> Grid:
        return cls(img.GetOrigin(), img.GetSpacing(), img.GetDirection())  # type: ignore[arg-type]


@dataclass
class Stored:
    """One file's voxels in stored index order ``(z, y, x)`` (2D files as ``(1, y, x)``, with
    ``grid`` None when the format has no 3D placement) or ``(c, z, y, x)`` for channels."""

    array: np.ndarray
    grid: Grid | None


def read_stored(path: Path, *, mask: bool = False, channels: bool = False) -> Stored:
    if volume_suffix(path) not in (".nii", ".nii.gz"):
        img = _scalar_3d(read_sitk(path), path)
        view = sitk.GetArrayViewFromImage(img)
        values = to_mask(view, path) if mask else np.array(view)
        if img.GetDimension() == 2:
            return Stored(values[None], None)
        return Stored(values, Grid.of(img))
    data = read_nifti(path, channels=channels)
    values = data.array
    grid = Grid(data.origin, data.spacing, data.direction)
    if values.ndim == 2:
        values = values[None]
    if mask:
        values = to_mask(values * data.slope + data.inter if data.scaled else values, path)
    elif data.scaled:
        out = values.astype(np.float32)  # the one copy
        out *= np.float32(data.slope)
        out += np.float32(data.inter)
        values = out
    # Unscaled voxels keep their stored type (int16 for BraTS): half the memory of float32, and
    # slices are converted one by one when windowed and measured.
    return Stored(values, grid)


def _to_lps(stored: Stored, where: Path) -> np.ndarray:
    if stored.grid is None:
        return stored.array
    try:
        return to_lps(stored.array, stored.grid.direction)
    except ValueError as exc:
        raise UnreadableInput(f"{where.name}: {exc}; fix the header's orientation") from exc


def read_volume(path: Path, *, mask: bool = False) -> tuple[np.ndarray, bool]:
    """Read a NIfTI/MHA/NRRD file as a canonical array and whether its orientation is known.

    A 3D file comes back as LPS ``(z, y, x)``; a 2D NIfTI file as the 2D image of its plane in
    display orientation (:func:`plane_view`), oriented; other 2D files as stored, unoriented.
    NIfTI voxels are read by :mod:`._nifti_io` (ITK would zero NaNs and pad truncated files)."""
    stored = read_stored(path, mask=mask)
    values = _to_lps(stored, path)
    if stored.grid is None:
        return values[0], False
    plane = _thin_plane(values.shape)
    if plane is not None:  # one slice (a 2D file): the image of its plane
        return plane_view(values, plane)[0], True
    return values, True


# A volume whose coarsest voxel side is at most this many times its finest is sliced axially
# whatever plane it was acquired in (reorienting it to LPS is an exact re-indexing, no
# interpolation). A more anisotropic one (thick slices) is sliced in its acquisition plane:
# axial slices of a thick sagittal stack would be a few pixels wide.
ISOTROPY_LIMIT = 1.5


def _thin_plane(shape: tuple[int, ...]) -> str | None:
    """The plane of a canonical array with a single slice along one axis."""
    for axis, plane in ((0, "axial"), (1, "coronal"), (2, "sagittal")):
        if shape[axis] == 1:
            return plane
    return None


def choose_plane(shape: tuple[int, ...], spacing: tuple[float, float, float]) -> str:
    """The plane to slice a canonical LPS volume in: axial unless the volume is a stack of thick
    (or single) sagittal or coronal slices, see :data:`ISOTROPY_LIMIT`."""
    thin = _thin_plane(shape)
    if thin is not None:
        return thin
    if max(spacing) <= ISOTROPY_LIMIT * min(spacing):
        return "axial"
    return ("axial", "coronal", "sagittal")[int(np.argmax(spacing))]


def plane_view(volume: np.ndarray, plane: str) -> np.ndarray:
    """``(slice, row, col)`` view of a canonical LPS ``(z, y, x)`` volume in ``plane``, each
    slice in the radiological display convention: axial rows anterior->posterior and columns
    patient right->left (as stored); coronal rows superior->inferior, columns right->left;
    sagittal rows superior->inferior, columns anterior->posterior. Views only, no copy."""
    if plane == "axial":
        return volume
    if plane == "coronal":
        return volume.transpose(1, 0, 2)[:, ::-1, :]
    if plane == "sagittal":
        return volume.transpose(2, 0, 1)[:, ::-1, :]
    raise ValueError(f"unknown plane {plane!r}")


def _view_spacing(spacing: tuple[float, float, float], plane: str) -> tuple[float, float]:
    sz, sy, sx = spacing
    return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[plane]


def _place_mask(mask: Stored, image: Stored, where: Path) -> Stored:
    """The mask resampled (nearest neighbour) onto the image's grid by both headers; refused
    when more than :data:`MASK_OUTSIDE_LIMIT` of its lesion lies outside the image."""
    assert mask.grid is not None and image.grid is not None
    lesion = np.argwhere(mask.array)
    if lesion.size:
        sample = lesion[:: max(1, len(lesion) // 200_000)]
        idx = image.grid.index(mask.grid.physical(sample))
        shape = np.asarray(image.array.shape[-3:], dtype=float)
        inside = ((idx >= -0.5) & (idx <= shape - 0.5)).all(axis=1)
        outside = 1.0 - float(inside.mean())
        if outside > MASK_OUTSIDE_LIMIT:
            shift = np.subtract(mask.grid.origin, image.grid.origin)
            raise UnreadableInput(
                f"{where.name}: {outside:.0%} of the mask's lesion lies outside its image by the "
                f"two headers (origins {float(np.linalg.norm(shift)):.0f} mm apart); the mask "
                "belongs to another image or its header is wrong: fix it or remove the mask"
            )
    reference = image.grid.image(np.zeros(image.array.shape[-3:], dtype=np.uint8))
    placed = sitk.Resample(
        mask.grid.image(mask.array), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0
    )
    return Stored(sitk.GetArrayFromImage(placed).astype(np.uint8, copy=False), image.grid)


def canonical_case(
    stored: dict[str, Stored],
    mask: Stored | None,
    where: dict[str, Path],
    mask_path: Path | None,
    mask_labels: dict[int, str],
) -> LoadedCase:
    """The LoadedCase of stored channels (and mask) in the plane the first one chooses."""
    primary = next(iter(stored))
    ref = stored[primary]
    placeable = mask is not None and ref.grid is not None and mask.grid is not None
    if placeable and not mask.grid.matches(ref.grid):  # type: ignore[union-attr]
        mask = _place_mask(mask, ref, mask_path or where[primary])  # type: ignore[arg-type]
    images = {name: _to_lps(s, where[name]) for name, s in stored.items()}
    mask_lps = None if mask is None else _to_lps(mask, mask_path or where[primary])
    first = images[primary]
    if ref.grid is None:  # 2D non-NIfTI: as stored, orientation unknown
        return LoadedCase(
            {n: a[0] for n, a in images.items()}, None if mask_lps is None else mask_lps[0]
        )
    spacing = lps_spacing(ref.grid.spacing, ref.grid.direction)
    plane = choose_plane(first.shape, spacing)
    views = {n: plane_view(a, plane) for n, a in images.items()}
    mask_view = None if mask_lps is None else plane_view(mask_lps, plane)
    pixel = _view_spacing(spacing, plane)
    if not math.isclose(pixel[0], pixel[1], rel_tol=SQUARE_TOLERANCE):
        # Slices of a volume re-indexed from another plane (or with oblong pixels): resampled
        # to square pixels at the finer spacing, so shapes and sizes are measured undistorted.
        views = {n: square_pixels(v, pixel) for n, v in views.items()}
        mask_view = None if mask_view is None else square_pixels(mask_view, pixel, nearest=True)
        pixel = (min(pixel), min(pixel))
    if _thin_plane(first.shape) is not None:
        # A single slice (a 2D NIfTI file): stored as a 2D image of its true plane.
        views = {n: v[0] for n, v in views.items()}
        mask_view = None if mask_view is None else mask_view[0]
    return LoadedCase(
        views,
        mask_view,
        orientation_known=True,
        mask_labels=dict(mask_labels),
        plane=plane,
        pixel_spacing=pixel,
    )


# Row and column spacings closer than this (relative) count as square pixels.
SQUARE_TOLERANCE = 0.02


def square_pixels(
    view: np.ndarray, spacing: tuple[float, float], *, nearest: bool = False
) -> np.ndarray:
    """A ``(slice, row, col)`` view resampled in-plane to square pixels of the finer spacing
    (linear for intensities, nearest neighbour for masks), keeping the field of view."""
    rows, cols = view.shape[1:]
    fine = min(spacing)
    size = (max(1, round(cols * spacing[1] / fine)), max(1, round(rows * spacing[0] / fine)))
    img = sitk.GetImageFromArray(np.ascontiguousarray(view))
    img.SetSpacing((spacing[1], spacing[0], 1.0))
    # Voxel centres: the new grid starts half a (new) pixel inside the old field of view.
    origin = (-spacing[1] / 2 + fine / 2, -spacing[0] / 2 + fine / 2, 0.0)
    out = sitk.Resample(
        img,
        (size[0], size[1], view.shape[0]),
        sitk.Transform(),
        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
        origin,
        (fine, fine, 1.0),
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        0,
        img.GetPixelID(),
    )
    return sitk.GetArrayFromImage(out)


# A 2D mask is a label map, binary with anti-aliased or compressed edges: a mask with more than
# this share of its pixels in mid-tones (between a quarter and three quarters of its maximum),
# spread over many grey levels, is a picture or a probability map.
MID_TONE_LIMIT = 0.05
MID_TONE_LEVELS = 16


def _refuse_grey_mask(values: np.ndarray, top: int, path: Path) -> None:
    if top == 0 or values.size == 0:
        return
    mid = values[(values > top / 4) & (values < 3 * top / 4)]
    share = mid.size / values.size
    if share > MID_TONE_LIMIT and len(np.unique(mid)) > MID_TONE_LEVELS:
        raise UnreadableInput(
            f"{path.name}: not a label map: {share:.0%} of its pixels are mid-grey over "
            f"{len(np.unique(values))} levels (an image or probability map used as a mask?); "
            "give the binary or labelled mask instead"
        )


def sitk_case(img: sitk.Image, channel: str, where: Path) -> LoadedCase:
    """A checked one-channel :class:`LoadedCase` of an image already read by SimpleITK (a DICOM
    series), with the geometry rules of :func:`canonical_case`: thick sagittal or coronal stacks
    keep their plane, oblong pixels are made square, a single slice is a 2D image of its plane.
    """
    img = _scalar_3d(img, where)
    view = sitk.GetArrayViewFromImage(img)
    if img.GetDimension() == 2:
        return check_loaded(LoadedCase({channel: np.array(view)}), where)
    stored = Stored(np.array(view), Grid.of(img))
    return checked_case(canonical_case({channel: stored}, None, {channel: where}, None, {}), None,
                        where)  # fmt: skip


def load_volume_case(
    channels: dict[str, Path],
    mask_path: Path | None,
    *,
    mask_labels: dict[int, str] | None = None,
    relabel: dict[int, int] | None = None,
) -> LoadedCase:
    """Read the sequences (and mask) of one volume case into a checked :class:`LoadedCase`.

    A mask whose header places it differently from its image (other origin, spacing or
    direction) is resampled onto the image's grid; see :func:`_place_mask`.
    """
    primary = next(iter(channels.values()))
    stored = {channel: read_stored(path) for channel, path in channels.items()}
    mask = None
    if mask_path is not None:
        mask = read_stored(mask_path, mask=True)
        for old, new in (relabel or {}).items():
            mask.array[mask.array == old] = new
    case = canonical_case(stored, mask, dict(channels), mask_path, mask_labels or {})
    return checked_case(case, mask_path, primary)


def checked_case(case: LoadedCase, mask_path: Path | None, primary: Path) -> LoadedCase:
    # Name the mask file when it is the mask that does not fit, the primary image otherwise.
    first = case.images[next(iter(case.images))]
    misfit = case.mask is not None and case.mask.shape != first.shape
    return check_loaded(case, mask_path if misfit and mask_path else primary)


def _open_2d(path: Path) -> Image.Image:
    """The decoded image (its first frame), or :class:`UnreadableInput` naming the file."""
    img = None
    try:
        img = Image.open(path)
        img.load()  # decode now: Image.open only reads the header
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if img is not None:
            img.close()
        raise UnreadableInput(
            f"{path}: cannot decode the image ({exc}); the file may be truncated or not an image "
            "despite its extension: re-export or remove it"
        ) from exc
    return img


def read_image_2d(path: Path) -> np.ndarray:
    """A 2D image as float32 ``(y, x)`` grayscale; colour is converted to luminance."""
    with _open_2d(path) as img:
        if img.mode in ("L", "I", "F", "1") or img.mode.startswith("I;"):
            return np.asarray(img, dtype=np.float32)
        if img.mode in ("LA", "La"):
            return np.asarray(img.convert("L"), dtype=np.float32)
        return np.asarray(img.convert("RGB"), dtype=np.float32) @ _LUMA


def read_mask_2d(path: Path) -> np.ndarray:
    """A 2D mask as a uint8 label map.

    A lossless small label map (values up to ``MAX_MASK_LABEL``, e.g. BraTS-style sub-regions
    1..3) keeps its labels; a 0..255 mask, and any lossy file, is binarised at > 127 so
    anti-aliased edges and compression noise are not lesion; anything else is binarised at > 0.
    """
    with _open_2d(path) as img:
        gray = img if img.mode in ("L", "I", "F", "1") or img.mode.startswith("I;") else None
        values = np.asarray(gray if gray is not None else img.convert("L"))
    lossy = path.suffix.lower() in LOSSY_SUFFIXES
    top = int(values.max()) if values.size else 0
    if not lossy and top <= MAX_MASK_LABEL:
        return values.astype(np.uint8)
    _refuse_grey_mask(values, top, path)
    threshold = 127 if lossy or top > 127 else 0
    return (values > threshold).astype(np.uint8)
