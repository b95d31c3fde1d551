"""Find every case under a source root: walk it once, let each layout reader claim its files, and
reject whatever is left with a reason.

Readers run in :data:`READERS` order, most specific first: BraTS naming before plain volumes, YOLO
and image/mask pairs before plain class folders (which take every 2D image left). Discovery
streams: cases are yielded as readers find them and no array is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from neuroonco.errors import UnreadableInput
from neuroonco.tools.readers.base import Reader, Rejection, SourceCase
from neuroonco.tools.readers.brats import Brats2021Reader, Brats2023Reader
from neuroonco.tools.readers.class_folder import ClassFolderReader
from neuroonco.tools.readers.dicom import DicomReader
from neuroonco.tools.readers.figshare import FigshareMatReader
from neuroonco.tools.readers.msd import MsdReader
from neuroonco.tools.readers.nifti import NiftiReader
from neuroonco.tools.readers.pairs import ImageMaskPairReader
from neuroonco.tools.readers.yolo import YoloReader

READERS: tuple[Reader, ...] = (
    MsdReader(),  # imagesTr/labelsTr first: its label volumes must never be read as images
    Brats2021Reader(),
    Brats2023Reader(),
    FigshareMatReader(),
    DicomReader(),
    NiftiReader(),
    YoloReader(),
    ImageMaskPairReader(),
    ClassFolderReader(),
)

SUPPORTED = (
    "BraTS case folders, Decathlon/nnU-Net imagesTr+labelsTr, NIfTI/MHA/NRRD volumes "
    "(+ _seg masks), DICOM series, figshare .mat "
    "(v7.3), 2D images (.jpg .png .bmp .tif .gif .webp) in class folders, with masks or YOLO labels"
)

# Metadata that sits beside images and is not itself an input.
_SIDECAR_NAMES = {"thumbs.db", "desktop.ini", "data.yaml", "data.yml", "dataset.yaml"}
_SIDECAR_PREFIXES = ("readme", "license", "licence", "changelog", "citation")
_SIDECAR_SUFFIXES = {".csv", ".tsv", ".json", ".txt", ".md", ".yaml", ".yml", ".xlsx", ".xls"}
_SKIPPED_DIRS = {"__macosx", "__pycache__"}  # macOS zip resource forks, Python caches


def is_sidecar(path: Path) -> bool:
    """Whether a left-over file is metadata to skip quietly rather than reject."""
    name = path.name.lower()
    return (
        name in _SIDECAR_NAMES
        or name.startswith(_SIDECAR_PREFIXES)
        or path.suffix.lower() in _SIDECAR_SUFFIXES
    )


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in sorted order, hidden files and folders skipped.

    Folder symlinks are followed, each real folder entered once: a link back up the tree (a
    loop) or a second link to the same folder adds nothing. Dangling links are yielded like
    files, for :func:`discover` to reject."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d.lower() not in _SKIPPED_DIRS and _unseen(folder, d, seen)
        )
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name)


def _unseen(folder: str, name: str, seen: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(os.path.join(folder, name))
    except OSError:
        return False
    return (st.st_dev, st.st_ino) not in seen


def _unreadable(path: Path) -> str | None:
    """Why a walked file cannot be read at all (before any reader looks at it), or None."""
    if path.is_symlink() and not path.exists():
        return (
            "dangling symbolic link (a git-annex or DataLad file whose content is not fetched?); "
            "fetch it (`datalad get` / `git annex get`) or remove the link"
        )
    if not os.access(path, os.R_OK):
        return "permission denied; make the file readable or remove it from the source"
    return None


def discover(root: Path) -> Iterator[SourceCase | Rejection]:
    """Every case (and every rejected file, with why) under ``root``, a folder or a single file.

    Raises :class:`UnreadableInput` when ``root`` does not exist.
    """
    root = Path(root).absolute()
    if not root.exists():
        raise UnreadableInput(f"{root}: no such file or folder; check the source path")
    if root.is_file():
        yield from _single_file(root)
        return
    yield from _discover(root, list(_walk(root)))


# Sibling folders whose files may belong to a single file given as the source (its mask, its
# label volume).
_PARTNER_DIRS = {"masks", "mask", "labels", "label", "gt", "groundtruth", "segmentations",
                 "labelstr", "labelsts"}  # fmt: skip


def _single_file(path: Path) -> Iterator[SourceCase | Rejection]:
    """One file given as the source keeps what its surroundings say: it is read among its
    neighbours (its folder, a masks/ or labelsTr/ folder beside it, a dataset.json above), with
    the folder above its own as the base, so its class folder still names its label; only what
    concerns the file itself is yielded."""
    folder = path.parent
    base = folder.parent if folder.parent != folder else folder
    near = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    for sibling in sorted(base.iterdir()) if base != folder else ():
        if sibling.is_dir() and sibling != folder and sibling.name.lower() in _PARTNER_DIRS:
            near += list(_walk(sibling))
    if (base / "dataset.json").is_file():
        near.append(base / "dataset.json")
    for item in _discover(base, near, keep=path):
        if (isinstance(item, Rejection) and item.path == path) or (
            isinstance(item, SourceCase) and path in item.files
        ):
            yield item


def _discover(
    base: Path, files: list[Path], keep: Path | None = None
) -> Iterator[SourceCase | Rejection]:
    unclaimed: set[Path] = set()
    for path in files:
        if (reason := _unreadable(path)) is not None:
            yield Rejection(path, reason)
            continue
        # Empty label files are meaningful to YOLO (an image with no objects); others are not.
        if path.suffix.lower() != ".txt" and _size(path) == 0:
            yield Rejection(path, "empty file (0 bytes); re-download or remove it")
        else:
            unclaimed.add(path)
    for reader in READERS:
        yield from reader.claim(base, unclaimed)
    for path in sorted(unclaimed):
        if not is_sidecar(path) and (keep is None or path == keep):
            yield Rejection(
                path, f"not a recognised image or volume format; supported: {SUPPORTED}"
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
