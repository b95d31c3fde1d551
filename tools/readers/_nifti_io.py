"""NIfTI voxel data read directly, geometry from SimpleITK.

SimpleITK 2.x (ITK < 6) reads NIfTI lossily for our purpose: it silently replaces NaN/inf voxels
with 0 (ITK PR #6683) and fills a truncated ``.nii.gz`` with zeros instead of failing. Both must
reject the file, so the voxels are read here (one gzip pass, no extra copy: the array is a view of
the decompressed bytes) while the orientation still comes from ITK's header reading
(``ReadImageInformation``: qform/sform handling stays ITK's). :func:`to_lps` then reorients the
array as ``sitk.DICOMOrient(img, "LPS")`` would, with views only.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from neuroonco.errors import UnreadableInput

# NIfTI datatype code -> numpy dtype (scalar types only; RGB and complex are not images here).
_DTYPES = {
    2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8",
    256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8",
}  # fmt: skip


@dataclass
class NiftiData:
    array: np.ndarray
    """Voxels in ITK index order: ``(z, y, x)`` (or ``(y, x)``), a read-only view."""
    slope: float
    inter: float
    direction: tuple[float, ...]
    """ITK direction cosines (row-major, LPS physical frame)."""

    @property
    def scaled(self) -> bool:
        return bool(np.isfinite(self.slope) and self.slope != 0) and (
            self.slope != 1 or self.inter != 0
        )


def _header(raw: bytes, path: Path) -> tuple[str, tuple[int, ...], int, float, float]:
    """(dtype, shape x-fastest, vox_offset, slope, inter) of a NIfTI-1 header."""
    for order in "<>":
        size = struct.unpack_from(order + "i", raw, 0)[0] if len(raw) >= 348 else 0
        if size == 540:
            raise UnreadableInput(
                f"{path}: a NIfTI-2 file, which SimpleITK cannot read; convert it to NIfTI-1 "
                "(e.g. nibabel.save(nibabel.Nifti1Image(img.dataobj, img.affine), path))"
            )
        if size == 348:
            dims = struct.unpack_from(order + "8h", raw, 40)
            code = struct.unpack_from(order + "h", raw, 70)[0]
            offset, slope, inter = struct.unpack_from(order + "3f", raw, 108)
            break
    else:
        raise UnreadableInput(f"{path}: not a NIfTI file (bad header size); re-export it")
    if code not in _DTYPES:
        raise UnreadableInput(
            f"{path}: NIfTI datatype {code} is not a scalar intensity type (RGB/complex?); "
            "convert it to a grayscale volume"
        )
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        raise UnreadableInput(f"{path}: NIfTI header has an invalid dim[0] = {ndim}")
    shape = tuple(int(d) for d in dims[1 : ndim + 1])
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise UnreadableInput(
            f"{path}: {len(shape)}D data (shape {shape}); only 2D images and 3D volumes are "
            "supported. Split 4D series into one 3D volume per time point first."
        )
    dtype = order + _DTYPES[code]
    return dtype, shape, max(int(offset), 352), slope, inter


def _bytes(path: Path) -> bytes | np.memmap:
    if path.name.lower().endswith(".gz"):
        try:
            packed = path.read_bytes()
            inflater = zlib.decompressobj(wbits=31)  # gzip framing; one member, one pass
            raw = inflater.decompress(packed)
            if not inflater.eof:
                raise EOFError("the gzip stream ends early")
            # Several gzip members are legal but rare: let the gzip module join them.
            return gzip.decompress(packed) if inflater.unused_data.strip(b"\0") else raw
        except (EOFError, OSError, zlib.error) as exc:
            raise UnreadableInput(
                f"{path}: truncated or corrupt gzip data ({exc}); re-download the file"
            ) from exc
    return np.memmap(path, dtype=np.uint8, mode="r")


def read_nifti(path: Path) -> NiftiData:
    """Voxels of a ``.nii``/``.nii.gz`` file and ITK's reading of its orientation."""
    raw = _bytes(path)
    dtype, shape, offset, slope, inter = _header(bytes(raw[:352]), path)
    count = int(np.prod(shape))
    needed = offset + count * np.dtype(dtype).itemsize
    if len(raw) < needed:
        raise UnreadableInput(
            f"{path}: truncated: {len(raw)} bytes of voxel data and header, {needed} expected; "
            "re-download the file"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape[::-1])
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UnreadableInput(f"{path}: ITK cannot read the NIfTI header: {exc}") from exc
    itk_shape = tuple(s for s in reader.GetSize() if s != 1)
    if itk_shape != tuple(s for s in shape if s != 1):
        raise UnreadableInput(
            f"{path}: header dimensions disagree (ITK {reader.GetSize()}, header {shape})"
        )
    if len(shape) == 3 and reader.GetDimension() != 3:
        raise UnreadableInput(f"{path}: cannot read a 3D orientation from the header")
    return NiftiData(array, float(slope), float(inter), reader.GetDirection())


def to_lps(array: np.ndarray, direction: tuple[float, ...]) -> np.ndarray:
    """View of a ``(z, y, x)`` index-order array reoriented to LPS, as DICOMOrient does: each
    index axis goes to its closest physical axis, flipped when it runs the other way."""
    cosines = np.asarray(direction, dtype=float).reshape(3, 3)  # column j: index axis j
    physical = np.abs(cosines).argmax(axis=0)
    if sorted(physical) != [0, 1, 2]:
        raise ValueError(f"degenerate direction cosines {direction}")
    # Output axis b shows physical axis 2 - b (S, P, L); input numpy axis a is index axis 2 - a.
    order = [2 - int(np.flatnonzero(physical == 2 - b)[0]) for b in range(3)]
    out = array.transpose(order)
    flips = tuple(b for b in range(3) if cosines[physical[2 - order[b]], 2 - order[b]] < 0)
    return np.flip(out, axis=flips) if flips else out
