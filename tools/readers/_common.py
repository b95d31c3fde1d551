"""Helpers shared by the layout readers: file kinds, array reading, and path-derived hints.

Reading follows the canonical orientation of :mod:`neuroonco.tools.readers.base`: a 3D volume is
reoriented to ``LPS`` (skipped when already so) and copied once into a float32 ``(z, y, x)``
array, read with SimpleITK, or for NIfTI by :mod:`._nifti_io` (ITK would hide NaNs and
truncation); a 2D image is read with Pillow as stored. Masks become uint8.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality, normalise, normalise_label
from neuroonco.tools.readers._nifti_io import read_nifti, to_lps
from neuroonco.tools.readers.base import LoadedCase, check_loaded

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


def itk_reason(exc: Exception) -> str:
    """The informative line of an ITK exception (they run to a dozen lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in reversed(lines) if "description" in ln.lower()), None)
    text = (detail or (lines[-1] if lines else type(exc).__name__)).split(":", 1)[-1].strip()
    return text[:200]


def read_sitk(path: Path) -> sitk.Image:
    """Read any SimpleITK-supported file, turning its errors into :class:`UnreadableInput`."""
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise UnreadableInput(
            f"{path}: cannot read it ({itk_reason(exc)}); the file may be truncated or corrupt: "
            "re-download it or remove it from the source folder"
        ) from exc


def sitk_to_array(img: sitk.Image, where: Path, *, mask: bool = False) -> tuple[np.ndarray, bool]:
    """Canonical array of a SimpleITK image and whether its orientation is known.

    3D images are reoriented to LPS (skipped when already LPS) and returned as ``(z, y, x)``;
    2D images are returned as stored. One copy, in the stored numeric type (uint8 for masks).
    """
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise UnreadableInput(
            f"{where}: {img.GetNumberOfComponentsPerPixel()} components per voxel; only scalar "
            "(grayscale) volumes are supported"
        )
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() not in (2, 3):
        raise UnreadableInput(
            f"{where}: {img.GetDimension()}D data (size {img.GetSize()}); only 2D images and 3D "
            "volumes are supported. Split 4D series into one 3D volume per time point first."
        )
    oriented = img.GetDimension() == 3
    if oriented:
        current = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())
        if current != "LPS":
            img = sitk.DICOMOrient(img, "LPS")
    view = sitk.GetArrayViewFromImage(img)
    return (to_mask(view, where) if mask else np.array(view)), oriented


def to_mask(values: np.ndarray, where: Path) -> np.ndarray:
    """A label map as uint8, refusing values that do not fit (fractions are rounded)."""
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise UnreadableInput(f"{where}: mask has NaN/inf values; fix or drop the file")
        values = np.rint(values)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise UnreadableInput(
            f"{where}: mask labels outside 0..255 (min {values.min()}, max {values.max()}); "
            "masks must be label maps"
        )
    return values.astype(np.uint8)


def read_volume(path: Path, *, mask: bool = False) -> tuple[np.ndarray, bool]:
    """Read a NIfTI/MHA/NRRD file as a canonical array; see :func:`sitk_to_array`.

    NIfTI voxels are read by :mod:`._nifti_io` (ITK would zero NaNs and pad truncated files)."""
    if volume_suffix(path) not in (".nii", ".nii.gz"):
        return sitk_to_array(read_sitk(path), path, mask=mask)
    data = read_nifti(path)
    values, oriented = data.array, data.array.ndim == 3
    if oriented:
        try:
            values = to_lps(values, data.direction)
        except ValueError as exc:
            raise UnreadableInput(f"{path}: {exc}; fix the header's orientation") from exc
    if mask:
        return to_mask(values * data.slope + data.inter if data.scaled else values, path), oriented
    if not data.scaled:
        # Kept in the stored type (int16 for BraTS): half the memory of float32, and slices
        # are converted one by one when windowed and measured.
        return values, oriented
    out = values.astype(np.float32)  # the one copy
    out *= np.float32(data.slope)
    out += np.float32(data.inter)
    return out, oriented


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
    threshold = 127 if lossy or top > 127 else 0
    return (values > threshold).astype(np.uint8)


def load_volume_case(
    channels: dict[str, Path],
    mask_path: Path | None,
    *,
    mask_labels: dict[int, str] | None = None,
    relabel: dict[int, int] | None = None,
) -> LoadedCase:
    """Read the sequences (and mask) of one volume case into a checked :class:`LoadedCase`."""
    primary = next(iter(channels.values()))
    images: dict[str, np.ndarray] = {}
    known = True
    for channel, path in channels.items():
        images[channel], oriented = read_volume(path)
        known = known and oriented
    mask = None
    if mask_path is not None:
        mask, _ = read_volume(mask_path, mask=True)
        for old, new in (relabel or {}).items():
            mask[mask == old] = new
    # Name the mask file when it is the mask that does not fit, the primary image otherwise.
    misfit = mask is not None and mask.shape != images[next(iter(images))].shape
    case = LoadedCase(images, mask, orientation_known=known, mask_labels=dict(mask_labels or {}))
    return check_loaded(case, mask_path if misfit and mask_path else primary)
