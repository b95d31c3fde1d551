"""NIfTI voxel data read directly, geometry from SimpleITK.

SimpleITK 2.x (ITK < 6) reads NIfTI lossily for our purpose: it silently replaces NaN/inf voxels
with 0 (ITK PR #6683) and fills a truncated ``.nii.gz`` with zeros instead of failing. Both must
reject the file, so the voxels are read here (one gzip pass, no extra copy: the array is a view of
the decompressed bytes) while the orientation still comes from ITK's header reading
(``ReadImageInformation``: qform/sform handling stays ITK's). :func:`to_lps` then reorients the
array as ``sitk.DICOMOrient(img, "LPS")`` would, with views only.

Two exceptions to ITK's geometry: a 2D file's full 3D placement is read from the header here
(ITK keeps only the top-left 2x2 of the direction, which cannot tell an axial slice from a
sagittal one), and a 4D file is read only when the caller takes its 4th axis as channels (the
Medical Segmentation Decathlon stores the sequences of a case that way).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

try:  # ISA-L inflates gzip about 1.7x faster than zlib (and frees the GIL): decompression is
    # most of the time of reading a BraTS-size .nii.gz. zlib stays the fallback.
    from isal import isal_zlib as _inflate_lib
except ImportError:  # pragma: no cover - isal is a core dependency; a platform without a wheel
    _inflate_lib = zlib  # type: ignore[assignment]

from neuroonco.errors import UnreadableInput
from neuroonco.tools.readers.reasons import itk_reason

# NIfTI datatype code -> numpy dtype (scalar types only; RGB and complex are not images here).
_DTYPES = {
    2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8",
    256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8",
}  # fmt: skip


@dataclass
class NiftiData:
    array: np.ndarray
    """Voxels in ITK index order: ``(z, y, x)`` (or ``(y, x)``; ``(c, z, y, x)`` for channels),
    a read-only view."""
    slope: float
    inter: float
    direction: tuple[float, ...]
    """ITK direction cosines (row-major 3x3, LPS physical frame), also for 2D and 4D files."""
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Physical position (LPS mm) of the first voxel."""
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Voxel size in mm along index axes i, j, k."""

    @property
    def scaled(self) -> bool:
        return bool(np.isfinite(self.slope) and self.slope != 0) and (
            self.slope != 1 or self.inter != 0
        )


def _header(
    raw: bytes, path: Path, *, channels: bool = False
) -> tuple[str, tuple[int, ...], int, float, float]:
    """(dtype, shape x-fastest, vox_offset, slope, inter) of a NIfTI-1 header; ``channels``
    allows a 4th axis (read as channels)."""
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
    if len(shape) > (4 if channels else 3):
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
            inflater = _inflate_lib.decompressobj(wbits=31)  # gzip framing; one member, one pass
            raw = inflater.decompress(packed)
            if not inflater.eof:
                raise EOFError("the gzip stream ends early")
            # Several gzip members are legal but rare: let the gzip module join them.
            return gzip.decompress(packed) if inflater.unused_data.strip(b"\0") else raw
        except (EOFError, OSError, zlib.error, _inflate_lib.error) as exc:
            raise UnreadableInput(
                f"{path.name}: truncated or corrupt gzip data ({exc}); re-download the file"
            ) from exc
    return np.memmap(path, dtype=np.uint8, mode="r")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _not_gzip(path: Path) -> UnreadableInput:
    """Why a ``.gz`` file that holds no gzip data (and no NIfTI header either) is refused."""
    return UnreadableInput(
        f"{path.name}: named .gz but not gzip-compressed, and not a NIfTI file either; "
        "check what the file really is (e.g. `file` on it) and rename or re-export it"
    )


def read_nifti(path: Path, *, channels: bool = False) -> NiftiData:
    """Voxels of a ``.nii``/``.nii.gz`` file and ITK's reading of its orientation.

    A ``.gz`` file that is in fact an uncompressed NIfTI file is read as such (a misnamed file
    is not a damaged one). ``channels`` admits a 4D file, returned as ``(c, z, y, x)``.
    """
    if path.name.lower().endswith(".gz") and not _is_gzip(path):
        head = path.read_bytes()[:4]
        if head not in (struct.pack("<i", 348), struct.pack(">i", 348)):
            raise _not_gzip(path)
        raw: bytes | np.memmap = np.memmap(path, dtype=np.uint8, mode="r")
    else:
        raw = _bytes(path)
    header = bytes(raw[:352])
    dtype, shape, offset, slope, inter = _header(header, path, channels=channels)
    count = int(np.prod(shape))
    needed = offset + count * np.dtype(dtype).itemsize
    if len(raw) < needed:
        raise UnreadableInput(
            f"{path.name}: truncated: {len(raw)} bytes of voxel data and header, {needed} "
            "expected; re-download the file"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape[::-1])
    if len(shape) == 2:  # ITK would keep a 2x2 direction only: the header says more
        return NiftiData(array, float(slope), float(inter), *_header_geometry(header, path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise UnreadableInput(
            f"{path.name}: ITK cannot read the NIfTI header ({itk_reason(exc)})"
        ) from exc
    itk_shape = tuple(s for s in reader.GetSize() if s != 1)
    if itk_shape != tuple(s for s in shape if s != 1):
        raise UnreadableInput(
            f"{path.name}: header dimensions disagree (ITK {reader.GetSize()}, header {shape})"
        )
    dim = reader.GetDimension()
    if len(shape) >= 3 and dim < 3:
        raise UnreadableInput(f"{path.name}: cannot read a 3D orientation from the header")
    cosines = np.asarray(reader.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
    return NiftiData(
        array,
        float(slope),
        float(inter),
        tuple(float(v) for v in cosines.ravel()),
        tuple(float(v) for v in reader.GetOrigin()[:3]),  # type: ignore[arg-type]
        tuple(float(v) for v in reader.GetSpacing()[:3]),  # type: ignore[arg-type]
    )


def _header_geometry(
    header: bytes, path: Path
) -> tuple[tuple[float, ...], tuple[float, float, float], tuple[float, float, float]]:
    """(LPS direction 3x3 row-major, LPS origin, spacing) from the NIfTI-1 header itself.

    The standard's precedence, as nibabel's ``get_best_affine``: the sform when its code is set,
    else the qform (quaternion), else the voxel sizes alone.
    """
    order = "<" if struct.unpack_from("<i", header, 0)[0] == 348 else ">"
    pixdim = struct.unpack_from(order + "8f", header, 76)
    qcode, scode = struct.unpack_from(order + "2h", header, 252)
    if scode > 0:
        rows = np.array(struct.unpack_from(order + "12f", header, 280), dtype=float).reshape(3, 4)
        linear, offset = rows[:, :3], rows[:, 3]
    elif qcode > 0:
        b, c, d, *offset = struct.unpack_from(order + "6f", header, 256)
        a = float(np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d))))
        rotation = np.array(
            [
                [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
            ]
        )
        qfac = -1.0 if pixdim[0] < 0 else 1.0
        zooms = np.array([pixdim[1], pixdim[2], qfac * (pixdim[3] or 1.0)], dtype=float)
        linear, offset = rotation * zooms, np.asarray(offset, dtype=float)
    else:
        linear, offset = np.diag([p or 1.0 for p in pixdim[1:4]]).astype(float), np.zeros(3)
    spacing = np.linalg.norm(linear, axis=0)
    if not np.all(spacing > 0) or not np.isfinite(linear).all():
        raise UnreadableInput(f"{path.name}: degenerate orientation in the NIfTI header")
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    direction = ras_to_lps @ (linear / spacing)
    origin = ras_to_lps @ offset
    return (
        tuple(float(v) for v in direction.ravel()),
        (float(origin[0]), float(origin[1]), float(origin[2])),
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
    )


def _lps_axes(direction: tuple[float, ...]) -> tuple[list[int], tuple[int, ...]]:
    """(numpy axis order, flipped output axes) that bring a ``(z, y, x)`` index-order array to
    LPS, as DICOMOrient does: each index axis goes to its closest physical axis, flipped when
    it runs the other way."""
    cosines = np.asarray(direction, dtype=float).reshape(3, 3)  # column j: index axis j
    physical = np.abs(cosines).argmax(axis=0)
    if sorted(physical) != [0, 1, 2]:
        raise ValueError(f"degenerate direction cosines {direction}")
    # Output axis b shows physical axis 2 - b (S, P, L); input numpy axis a is index axis 2 - a.
    order = [2 - int(np.flatnonzero(physical == 2 - b)[0]) for b in range(3)]
    flips = tuple(b for b in range(3) if cosines[physical[2 - order[b]], 2 - order[b]] < 0)
    return order, flips


def to_lps(array: np.ndarray, direction: tuple[float, ...]) -> np.ndarray:
    """View of a ``(z, y, x)`` index-order array reoriented to LPS (axes S, P, L)."""
    order, flips = _lps_axes(direction)
    out = array.transpose(order)
    return np.flip(out, axis=flips) if flips else out


def lps_spacing(
    spacing: tuple[float, ...], direction: tuple[float, ...]
) -> tuple[float, float, float]:
    """Voxel size in mm along the axes of :func:`to_lps`'s output (S, P, L)."""
    order, _ = _lps_axes(direction)
    sz, sy, sx = (float(spacing[2 - a]) for a in order)
    return sz, sy, sx
