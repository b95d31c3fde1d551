"""The figshare brain tumour set (Cheng et al. 2015/2017): one MATLAB v7.3 ``.mat`` per slice.

Each file holds a struct ``cjdata`` with ``label`` (1 meningioma, 2 glioma, 3 pituitary tumour),
``PID`` (patient id as uint16 character codes), ``image``, ``tumorBorder`` and ``tumorMask``.
v7.3 files are HDF5, read with h5py; MATLAB stores arrays column-major, so they are transposed.
The set is T1-weighted contrast-enhanced (CE-MRI), so the single channel is ``t1ce``.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers._common import split_hint
from neuroonco.tools.readers.base import LoadedCase, Rejection, SourceCase, check_loaded

DATASET = "figshare_brain_tumor"
_LABELS = {1: Diagnosis.meningioma, 2: Diagnosis.glioma, 3: Diagnosis.pituitary_tumor}


def _header(path: Path) -> tuple[Diagnosis, str]:
    """Label and PID of one file, without reading the image; raises UnreadableInput."""
    with path.open("rb") as fh:
        # v7.3 files start "MATLAB 7.3 MAT-file" and are HDF5 after a 512-byte user block.
        if fh.read(19) == b"MATLAB 5.0 MAT-file":
            raise UnreadableInput(
                f"{path}: a MATLAB v5 file; only v7.3 (HDF5) files of the figshare brain tumour "
                "set are read: re-save it in MATLAB with save(name, 'cjdata', '-v7.3')"
            )
    try:
        with h5py.File(path, "r") as f:
            if "cjdata" not in f:
                raise UnreadableInput(
                    f"{path}: MATLAB file without a cjdata struct (e.g. the set's cvind.mat "
                    "index file); only the figshare brain tumour slices are read"
                )
            cj = f["cjdata"]
            code = int(np.asarray(cj["label"]).ravel()[0])
            pid = "".join(map(chr, np.asarray(cj["PID"]).ravel())).strip("\x00 ")
    except (OSError, KeyError, IndexError, ValueError) as exc:
        raise UnreadableInput(
            f"{path}: not a readable figshare cjdata file ({exc}); re-download or remove it"
        ) from exc
    if code not in _LABELS:
        raise UnreadableInput(f"{path}: cjdata.label {code} is not 1, 2 or 3")
    return _LABELS[code], pid


def load_figshare(path: Path) -> LoadedCase:
    """Image (float32) and tumour mask (uint8 0/1) of one cjdata file, as stored (2D)."""
    try:
        with h5py.File(path, "r") as f:
            cj = f["cjdata"]
            image = np.asarray(cj["image"]).T.astype(np.float32)
            mask = (np.asarray(cj["tumorMask"]).T > 0).astype(np.uint8)
    except (OSError, KeyError, ValueError) as exc:
        raise UnreadableInput(
            f"{path}: cannot read cjdata.image/tumorMask ({exc}); the file may be truncated: "
            "re-download or remove it"
        ) from exc
    case = LoadedCase({Modality.t1ce.value: image}, mask, orientation_known=False)
    return check_loaded(case, path)


class FigshareMatReader:
    """Claims every ``.mat`` file; those that are not cjdata slices are rejected with why."""

    name = "figshare_mat"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        for path in sorted(p for p in unclaimed if p.suffix.lower() == ".mat"):
            unclaimed.discard(path)
            try:
                label, pid = _header(path)
            except UnreadableInput as exc:
                yield Rejection(path, str(exc))
                continue
            yield SourceCase(
                source_format=self.name,
                dataset=DATASET,
                subject_key=pid or path.relative_to(root).as_posix(),
                files=(path,),
                label=label,
                load=partial(load_figshare, path),
                modalities=(Modality.t1ce,),
                mask_kind="segmentation",
                phi_strings=(pid,) if pid else (),
                split_hint=split_hint(root, path),
            )
