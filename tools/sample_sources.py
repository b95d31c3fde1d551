"""Writers of the public source layouts, from phantoms (the mixed sample tree: sample_tree.py).

Nothing can be downloaded here, so the demo and every reader test use files written by these
functions, byte-compatible with the public sets as far as the readers can tell: BraTS 2021 and
2023 case folders (NIfTI stored RAS, x and y flipped as many NIfTI exports are, so a reader that
does not reorient gets left and right wrong), figshare MATLAB v7.3 ``.mat`` slices (HDF5,
column-major), Kaggle class folders, image/mask pairs, YOLO sets, a DICOM series with planted
identifiers, plain NIfTI volumes, and a set of broken files. Every writer returns the paths it
wrote.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import SimpleITK as sitk
from PIL import Image

from neuroonco.tools.locale_guard import locale_kept
from neuroonco.tools.phantom import (
    SEQUENCES,
    Phantom,
    smooth_noise,
)

_BRATS2023_NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}
_RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
_MAT_TEXT = (
    "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    "HDF5 schema 1.00 ."
)
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_int16(volume: np.ndarray) -> np.ndarray:
    """Rounded and clipped to int16, the type of the BraTS and DICOM intensity files."""
    return np.rint(np.clip(volume, -32768, 32767)).astype(np.int16)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Min-max window to 0..255 (uint8 input is returned as is)."""
    if image.dtype == np.uint8:
        return image
    lo, hi = float(image.min()), float(image.max())
    return np.rint((image - lo) / max(hi - lo, 1e-6) * 255.0).astype(np.uint8)


def volume_image(
    volume: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), *, ras: bool = False
) -> sitk.Image:
    """A SimpleITK image of a canonical ``(z, y, x)`` array (``spacing`` in that order).

    ``ras=False`` keeps the identity direction (LPS, the canonical frame). ``ras=True`` stores
    the array with x and y flipped and a direction matrix saying so (RAS), so the raw array is
    mirrored but ``sitk.DICOMOrient(img, "LPS")`` gives back the canonical array, at the same
    physical place.
    """
    sz, sy, sx = (float(s) for s in spacing)
    if not ras:
        img = sitk.GetImageFromArray(np.ascontiguousarray(volume))
    else:
        img = sitk.GetImageFromArray(np.ascontiguousarray(volume[:, ::-1, ::-1]))
        img.SetDirection(_RAS)
        img.SetOrigin(((volume.shape[2] - 1) * sx, (volume.shape[1] - 1) * sy, 0.0))
    img.SetSpacing((sx, sy, sz))
    return img


def _write_nii(array: np.ndarray, path: Path, spacing, *, ras: bool) -> Path:
    sitk.WriteImage(volume_image(array, spacing, ras=ras), str(path), useCompression=True)
    return path


def _write_brats(folder: Path, case_id: str, ph: Phantom, names, sep: str, seg4: bool):
    ensure_dir(folder)
    paths = [
        _write_nii(
            to_int16(ph.volumes[seq]),
            folder / f"{case_id}{sep}{names[seq]}.nii.gz",
            ph.spacing,
            ras=True,
        )
        for seq in SEQUENCES
    ]
    seg = ph.mask.copy()
    if seg4:
        seg[seg == 3] = 4  # BraTS up to 2021 labels the enhancing tumour 4
    paths.append(_write_nii(seg, folder / f"{case_id}{sep}seg.nii.gz", ph.spacing, ras=True))
    return paths


def write_brats2021_case(root: Path, case_id: str, ph: Phantom) -> list[Path]:
    """``root/BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``: int16
    intensities, seg labels 1, 2, 4, stored RAS (see :func:`volume_image`). A bare number as
    ``case_id`` gets the ``BraTS2021_`` prefix."""
    case_id = case_id if case_id.startswith("BraTS") else f"BraTS2021_{case_id}"
    names = {s: s for s in SEQUENCES}
    return _write_brats(Path(root) / case_id, case_id, ph, names, "_", seg4=True)


def write_brats2023_case(root: Path, case_id: str, ph: Phantom) -> list[Path]:
    """``root/<id>/<id>-{t1n,t1c,t2w,t2f,seg}.nii.gz`` (id like ``BraTS-GLI-00000-000``): seg
    labels 1, 2, 3, stored RAS like :func:`write_brats2021_case`."""
    return _write_brats(Path(root) / case_id, case_id, ph, _BRATS2023_NAMES, "-", seg4=False)


def write_nifti_volume(
    path: Path,
    volume: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    mask_suffix: str = "_seg",
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    ras: bool = False,
) -> list[Path]:
    """One volume (and its mask as ``<stem><mask_suffix>.nii.gz`` beside it)."""
    path = Path(path)
    ensure_dir(path.parent)
    vol = volume.astype(np.float32) if volume.dtype == np.float64 else volume
    paths = [_write_nii(vol, path, spacing, ras=ras)]
    if mask is not None:
        ext = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
        mask_path = path.with_name(path.name[: -len(ext)] + mask_suffix + ext)
        paths.append(_write_nii(mask.astype(np.uint8), mask_path, spacing, ras=ras))
    return paths


def mat_userblock() -> bytes:
    """The 512-byte header MATLAB writes before the HDF5 data of a v7.3 file."""
    text = _MAT_TEXT.ljust(116).encode("ascii")
    return (text + b"\0" * 8 + struct.pack("<H", 0x0200) + b"IM").ljust(512, b"\0")


def _mat_dataset(group: h5py.Group, name: str, data: np.ndarray, matlab_class: str):
    ds = group.create_dataset(name, data=data)
    ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
    return ds


def mask_to_polygon(mask: np.ndarray, n_points: int = 32) -> np.ndarray:
    """Outline of the largest blob of ``mask`` as ``(n, 2)`` ``(x, y)`` pixel coordinates, by
    casting rays from the centroid (phantom lesions are star-shaped enough)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return np.zeros((0, 2))
    cy, cx = ys.mean(), xs.mean()
    angles = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    radii = np.arange(0, max(mask.shape), 0.5)
    py = np.rint(cy + np.sin(angles)[:, None] * radii).astype(int)
    px = np.rint(cx + np.cos(angles)[:, None] * radii).astype(int)
    ok = (py >= 0) & (py < mask.shape[0]) & (px >= 0) & (px < mask.shape[1])
    hit = np.zeros(py.shape, dtype=bool)
    hit[ok] = mask[py[ok], px[ok]] > 0
    last = hit.shape[1] - 1 - np.argmax(hit[:, ::-1], axis=1)
    last[~hit.any(axis=1)] = 0
    r = radii[last]
    return np.stack([cx + np.cos(angles) * r, cy + np.sin(angles) * r], axis=1)


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` pixel box of the non-zero voxels (x1, y1 exclusive)."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def write_figshare_mat(
    path: Path, image: np.ndarray, mask: np.ndarray, *, label: int, pid: str
) -> Path:
    """A figshare brain-tumour ``.mat`` slice: MATLAB v7.3 (HDF5 after a 512-byte userblock),
    struct ``cjdata`` with ``label``, ``PID``, ``image``, ``tumorBorder``, ``tumorMask``.

    MATLAB is column-major, so every matrix is stored transposed (the HDF5 dataset of an
    ``(rows, cols)`` image has shape ``(cols, rows)``); ``tumorBorder`` holds 1-based
    ``(row, col)`` pairs of border points, flattened, as a 1xN double.
    """
    path = Path(path)
    ensure_dir(path.parent)
    outline = mask_to_polygon(mask)
    border = (outline[:, ::-1] + 1.0).reshape(-1, 1)  # MATLAB 1xN -> HDF5 (N, 1)
    with h5py.File(path, "w", userblock_size=512) as f:
        cj = f.create_group("cjdata")
        cj.attrs["MATLAB_class"] = np.bytes_("struct")
        _mat_dataset(cj, "label", np.array([[float(label)]]), "double")
        codes = np.array([[ord(c)] for c in pid], dtype=np.uint16).reshape(-1, 1)
        _mat_dataset(cj, "PID", codes, "char").attrs["MATLAB_int_decode"] = np.int32(2)
        _mat_dataset(cj, "image", np.ascontiguousarray(image.astype(np.int16).T), "int16")
        _mat_dataset(cj, "tumorBorder", border.astype(np.float64), "double")
        tumour = np.ascontiguousarray((mask > 0).astype(np.uint8).T)
        _mat_dataset(cj, "tumorMask", tumour, "logical")
    with path.open("r+b") as fh:
        fh.write(mat_userblock())
    return path


def _save_image(image: np.ndarray, path: Path, fmt: str, *, rgb: bool = False) -> Path:
    ensure_dir(path.parent)
    pil = Image.fromarray(to_uint8(image))
    if rgb:
        pil = pil.convert("RGB")
    kind = "JPEG" if fmt.lower() in ("jpg", "jpeg") else fmt.upper()
    pil.save(path, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return path


def write_class_folder_image(
    root: Path,
    split: str | None,
    class_name: str,
    name: str,
    image: np.ndarray,
    *,
    fmt: str = "jpg",
    rgb: bool = False,
) -> Path:
    """``root/<split>/<class_name>/<name>.<fmt>`` (no split folder when ``split`` is None)."""
    folder = Path(root) / split / class_name if split else Path(root) / class_name
    return _save_image(image, folder / f"{name}.{fmt}", fmt, rgb=rgb)


def write_image_mask_pair(
    root: Path,
    name: str,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    style: str,
    class_name: str | None = None,
    index: int = 1,
) -> list[Path]:
    """An image and its mask as PNG, written as given (uint8 label values or 0/255).

    ``folders``: ``images/<name>.png`` + ``masks/<name>.png``; ``suffix``: ``<name>.png`` +
    ``<name>_mask.png``; ``kaggle``: ``<class>/<name> (N).png`` + ``<class>/<name> (N)_mask.png``
    (the class defaults to ``name``, as in ``benign/benign (1).png``).
    """
    root = Path(root)
    if style == "folders":
        img_path, mask_path = root / "images" / f"{name}.png", root / "masks" / f"{name}.png"
    elif style == "suffix":
        img_path, mask_path = root / f"{name}.png", root / f"{name}_mask.png"
    elif style == "kaggle":
        stem = f"{name} ({index})"
        folder = root / (class_name or name)
        img_path, mask_path = folder / f"{stem}.png", folder / f"{stem}_mask.png"
    else:
        raise ValueError(f"style must be folders, suffix or kaggle, not {style!r}")
    _save_image(image, img_path, "png")
    ensure_dir(mask_path.parent)
    Image.fromarray(mask.astype(np.uint8)).save(mask_path, "PNG")
    return [img_path, mask_path]


def _yolo_names(classes: Sequence[str], names_style: str) -> str:
    if names_style == "dict":
        return "names:\n" + "".join(f"  {i}: {c}\n" for i, c in enumerate(classes))
    return "names: [" + ", ".join(classes) + "]\n"


def write_yolo_sample(
    root: Path,
    name: str,
    image: np.ndarray,
    polygons_or_boxes: Sequence[tuple[int | str, Sequence]],
    *,
    classes: list[str],
    kind: str,
    names_style: str = "list",
) -> list[Path]:
    """``images/<name>.jpg``, ``labels/<name>.txt`` and ``data.yaml`` of a YOLO set.

    Each object is ``(class index or name, geometry)`` in pixels: for ``seg`` a sequence of
    ``(x, y)`` points (row ``cls x1 y1 x2 y2 ...``), for ``det`` a box ``(x0, y0, x1, y1)``
    (row ``cls cx cy w h``); rows are normalised by the image size. ``names_style`` writes the
    ``names:`` of data.yaml as a list or as a ``{index: name}`` mapping.
    """
    if kind not in ("seg", "det"):
        raise ValueError(f"kind must be seg or det, not {kind!r}")
    root = Path(root)
    h, w = image.shape[:2]
    rows = []
    for cls, geometry in polygons_or_boxes:
        idx = classes.index(cls) if isinstance(cls, str) else int(cls)
        g = np.asarray(geometry, dtype=float)
        if kind == "seg":
            vals = (g.reshape(-1, 2) / [w, h]).ravel()
        else:
            x0, y0, x1, y1 = g
            vals = np.array([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
        rows.append(" ".join([str(idx), *(f"{v:.6f}" for v in np.clip(vals, 0, 1))]))
    img_path = _save_image(image, root / "images" / f"{name}.jpg", "jpg")
    label_path = ensure_dir(root / "labels") / f"{name}.txt"
    label_path.write_text("".join(r + "\n" for r in rows))
    yaml = root / "data.yaml"
    head = f"path: .\ntrain: images\nval: images\nnc: {len(classes)}\n"
    yaml.write_text(head + _yolo_names(classes, names_style))
    return [img_path, label_path, yaml]


def _uid(*parts: object) -> str:
    """A deterministic DICOM UID (so a seed always gives the same files)."""
    digits = int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest(), 16)
    return f"2.25.{digits % 10**38}"


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    *,
    patient_name: str,
    patient_id: str,
    institution: str,
    study_date: str,
    modality_desc: str = "T1 post contrast",
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    birth_date: str = "19700101",
    referring_physician: str = "PLANTED^REFERRER",
    accession: str = "ACC-PLANTED-0001",
) -> list[Path]:
    """One axial MR ``.dcm`` per slice of a canonical ``(z, y, x)`` volume (``spacing`` in that
    order), with positions and orientation (LPS, identity), series/study UIDs, the description,
    and patient identifiers planted in the usual tags (for the PHI scrubbing tests)."""
    folder = ensure_dir(Path(folder))
    img = volume_image(to_int16(volume), spacing)
    d = img.GetDirection()
    study_uid = _uid("study", patient_id, study_date)
    series_uid = _uid("series", patient_id, study_date, modality_desc)
    tags = {
        "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND",
        "0008|0016": MR_IMAGE_STORAGE,
        "0008|0020": study_date,
        "0008|0021": study_date,
        "0008|0030": "101500",
        "0008|0031": "101500",
        "0008|0050": accession,
        "0008|0060": "MR",
        "0008|0080": institution,
        "0008|0090": referring_physician,
        "0008|103e": modality_desc,
        "0010|0010": patient_name,
        "0010|0020": patient_id,
        "0010|0030": birth_date,
        "0018|0050": f"{spacing[0]:.10g}",
        "0020|000d": study_uid,
        "0020|000e": series_uid,
        "0020|0011": "1",
        "0020|0037": "\\".join(f"{v:g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # keep our UIDs instead of fresh random ones
    paths = []
    for i in range(img.GetDepth()):
        piece = img[:, :, i]
        for tag, value in tags.items():
            piece.SetMetaData(tag, value)
        position = img.TransformIndexToPhysicalPoint((0, 0, i))
        piece.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))
        piece.SetMetaData("0020|0013", str(i + 1))
        piece.SetMetaData("0008|0018", _uid("instance", series_uid, i))
        path = folder / f"IM{i + 1:04d}.dcm"
        writer.SetFileName(str(path))
        with locale_kept():
            writer.Execute(piece)
        paths.append(path)
    return paths


BAD_INPUT_PROBLEMS = {
    "truncated_nifti": "truncated .nii.gz (gzip stream cut in half)",
    "empty_image": "empty file (0 bytes) with a .png name",
    "foreign_file": "not an image: a .docx of random bytes",
    "mask_shape_mismatch": "image of an image/mask pair whose mask has another shape",
    "mask_shape_mismatch_mask": "mask whose shape differs from its image",
    "nan_nifti": "NIfTI volume with NaN voxels",
    "nifti_4d": "4D NIfTI (a time series), not a 3D volume",
    "corrupt_mat": "MATLAB 7.3 header followed by garbage instead of HDF5",
}


def write_bad_inputs(root: Path, *, seed: int = 0) -> dict[str, Path]:
    """Broken files every reader must reject with a reason; keys as in BAD_INPUT_PROBLEMS."""
    root = ensure_dir(Path(root))
    rng = np.random.default_rng(seed)
    vol = smooth_noise(rng, (16, 32, 32), 4) * 100 + 500
    out = {
        "truncated_nifti": _write_nii(
            rng.random((16, 32, 32)), root / "truncated.nii.gz", (1, 1, 1), ras=False
        )
    }
    data = out["truncated_nifti"].read_bytes()
    out["truncated_nifti"].write_bytes(data[: len(data) // 2])
    out["empty_image"] = root / "empty.png"
    out["empty_image"].write_bytes(b"")
    out["foreign_file"] = root / "notes.docx"
    out["foreign_file"].write_bytes(rng.bytes(2048))
    img, mask = to_uint8(vol[8]), np.zeros((24, 24), dtype=np.uint8)
    mask[8:16, 8:16] = 255
    pair = write_image_mask_pair(root, "mismatch", img, mask, style="suffix")
    out["mask_shape_mismatch"], out["mask_shape_mismatch_mask"] = pair
    nan = vol.copy()
    nan[4:8, 10:20, 10:20] = np.nan
    out["nan_nifti"] = _write_nii(nan, root / "nan_volume.nii.gz", (1, 1, 1), ras=False)
    series = sitk.JoinSeries([volume_image(vol + 10 * t) for t in range(3)])
    out["nifti_4d"] = root / "timeseries_4d.nii.gz"
    sitk.WriteImage(series, str(out["nifti_4d"]), useCompression=True)
    out["corrupt_mat"] = root / "corrupt.mat"
    out["corrupt_mat"].write_bytes(mat_userblock() + rng.bytes(2048))
    return out
