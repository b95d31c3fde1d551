"""Builders of tiny source layouts for the reader tests.

Deliberately independent of ``neuroonco.tools.sample_sources`` (only one integration test uses
that): each builder writes the fewest bytes that still look like the public layout to a reader.
Volumes are built in canonical ``(z, y, x)`` LPS order; ``ras=True`` stores them the way BraTS
files are stored (x and y flipped, with a direction matrix saying so).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import SimpleITK as sitk
from PIL import Image

from neuroonco.tools.locale_guard import locale_kept
from neuroonco.tools.readers.base import Rejection, SourceCase

RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
SHAPE = (10, 16, 20)
SCALES = {"t1": 1.0, "t1ce": 1.5, "t2": 2.0, "flair": 2.5}


def blob(
    shape: tuple[int, ...] = SHAPE, centre: Iterable[float] | None = None, radius: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image with a bright sphere (or disc) and its uint8 0/1 mask."""
    centre = tuple(centre) if centre is not None else tuple(s / 2 for s in shape)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)))
    mask = (dist <= radius).astype(np.uint8)
    ramp = np.linspace(50, 150, shape[-1], dtype=np.float32)
    return ramp + np.float32(400) * mask, mask


def write_volume(path: Path, array: np.ndarray, *, ras: bool = False) -> Path:
    """Write a canonical ``(z, y, x)`` array; ``ras`` stores it flipped with a RAS direction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if ras:
        img = sitk.GetImageFromArray(np.ascontiguousarray(array[:, ::-1, ::-1]))
        img.SetDirection(RAS)
        img.SetOrigin((array.shape[2] - 1.0, array.shape[1] - 1.0, 0.0))
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    sitk.WriteImage(img, str(path), useCompression=path.name.endswith(".gz"))
    return path


def brats_labels(mask: np.ndarray, enhancing: int) -> np.ndarray:
    """Sub-regions of a 0/1 sphere mask: edema (2) everywhere, then enhancing and core inside."""
    labels = mask * 2
    inner = np.zeros_like(mask)
    centre = np.rint(np.argwhere(mask).mean(axis=0)).astype(int)
    inner[tuple(slice(c - 1, c + 1) for c in centre)] = 1
    labels[(labels > 0) & (np.roll(inner, 1, axis=2) > 0)] = enhancing
    labels[inner > 0] = 1
    return labels.astype(np.uint8)


def write_mat(path: Path, image: np.ndarray, mask: np.ndarray, *, label: int, pid: str) -> Path:
    """A figshare-style MATLAB v7.3 file: 512-byte text header, then HDF5, arrays column-major."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        cj = f.create_group("cjdata")
        cj["label"] = np.array([[float(label)]])
        cj["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16)
        cj["image"] = image.astype(np.int16).T
        cj["tumorMask"] = mask.astype(np.uint8).T
        cj["tumorBorder"] = np.zeros((1, 4))
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116))
    return path


def write_image(path: Path, array: np.ndarray, mode: str = "L") -> Path:
    """A 2D image file (format from the suffix); ``mode="RGB"`` repeats the gray levels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(array, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    (img.convert("RGB") if mode == "RGB" else img).save(path)
    return path


def write_dicom(
    folder: Path,
    volume: np.ndarray,
    *,
    tags: dict[str, str],
    description: str = "AX T1 POST GD",
    series: str = "1",
) -> list[Path]:
    """One axial slice per file with LPS identity geometry and the given identifying tags."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(volume.astype(np.int16))
    uid = f"1.2.826.0.1.3680043.2.1125.{series}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for i in range(img.GetDepth()):
        piece = img[:, :, i]
        for tag, value in {
            **tags,
            "0008|0060": "MR",
            "0008|103e": description,
            "0020|000e": uid,
            "0020|000d": uid + ".9",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": f"0\\0\\{i}",
            "0020|0013": str(i + 1),
            "0008|0018": f"{uid}.{i + 1}",
        }.items():
            piece.SetMetaData(tag, value)
        path = folder / f"s{series}_{i + 1:03d}.dcm"
        writer.SetFileName(str(path))
        with locale_kept():  # GDCM leaves the C locale behind otherwise
            writer.Execute(piece)
        paths.append(path)
    return paths


class Sources:
    """Builders of the public layouts under one root (a fixture: ``src``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def brats2021(
        self, case_id: str = "BraTS2021_00000", *, folder: str = "", skip=(), seg=True, **kw
    ) -> Path:
        return self._brats(case_id, "_", ("t1", "t1ce", "t2", "flair"), folder, skip, seg, 4, **kw)

    def brats2023(
        self, case_id: str = "BraTS-GLI-00000-000", *, folder: str = "", skip=(), seg=True, **kw
    ) -> Path:
        names = ("t1n", "t1c", "t2w", "t2f")
        return self._brats(case_id, "-", names, folder, skip, seg, 3, **kw)

    def _brats(self, case_id, sep, names, folder, skip, seg, enhancing, centre=None) -> Path:
        out = self.root / folder / case_id
        vol, mask = blob(centre=centre)
        for name, scale in zip(names, SCALES.values(), strict=True):
            if name not in skip:
                write_volume(out / f"{case_id}{sep}{name}.nii.gz", vol * scale, ras=True)
        if seg:
            labels = brats_labels(mask, enhancing)
            write_volume(out / f"{case_id}{sep}seg.nii.gz", labels, ras=True)
        return out

    def path(self, rel: str) -> Path:
        return self.root / rel


def claim_all(reader, root: Path) -> tuple[list[SourceCase], list[Rejection], set[Path]]:
    """Run one reader over every file under ``root``: (cases, rejections, files left)."""
    unclaimed = {p for p in root.rglob("*") if p.is_file()}
    items = list(reader.claim(root, unclaimed))
    cases = [i for i in items if isinstance(i, SourceCase)]
    rejections = [i for i in items if isinstance(i, Rejection)]
    return cases, rejections, unclaimed


def rel(root: Path, paths: Iterable[Path]) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)
