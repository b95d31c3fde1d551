"""2D image/mask pairs, as in the Kaggle LGG and BUSI-style sets.

Recognised pairings, tried in this order for every 2D file:

- ``images/`` + ``masks/`` (or ``mask``, ``labels``, ``gt``, ...) sibling folders, same relative
  path and stem (a mask may also carry a ``_mask`` suffix);
- ``<name>_mask.png`` beside ``<name>.png`` (also ``_seg``/``_label``, and ``_mask_1``... for
  a second lesion: all masks of one image are merged);
- ``mask (N).png`` beside, or in the masks folder of, the one image whose name ends in ``(N)``.

Masks keep small label maps (sub-regions) and are binarised otherwise (0..255, lossy). The
label is the class folder's when there is one; otherwise a non-empty mask gives ``tumor`` and an
empty one ``no_tumor``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis
from neuroonco.tools.readers._common import (
    dataset_name,
    folder_label,
    is_image_2d,
    read_image_2d,
    read_mask_2d,
    split_hint,
    strip_suffix,
    subject_from_path,
)
from neuroonco.tools.readers.base import (
    UNKNOWN_CHANNEL,
    LoadedCase,
    Rejection,
    SourceCase,
    check_loaded,
)

_IMAGE_DIRS = ("images", "image", "imgs", "img")
_MASK_DIRS = {"masks", "mask", "labels", "label", "gt", "groundtruth", "segmentations"}
_MASK_SUFFIX = re.compile(
    r"^(?P<key>.+?)[ _-](?P<kind>mask|seg|segmentation|label|gt)(?:[ _-]?\d+)?$", re.I
)
_NUMBERED_MASK = re.compile(r"^mask\s*\((?P<n>\d+)\)$", re.I)
_NUMBERED = re.compile(r"\((?P<n>\d+)\)$")


def load_pair(image: Path, masks: tuple[Path, ...]) -> LoadedCase:
    """The grayscale image and the union of its masks (labels kept; a later mask wins ties)."""
    pixels = read_image_2d(image)
    union = np.zeros(pixels.shape, dtype=np.uint8)
    for path in masks:
        mask = read_mask_2d(path)
        if mask.shape != pixels.shape:
            raise UnreadableInput(
                f"{path}: mask shape {mask.shape} differs from image {image.name} "
                f"{pixels.shape}; the mask must be drawn on the same grid as its image"
            )
        np.maximum(union, mask, out=union)
    return check_loaded(LoadedCase({UNKNOWN_CHANNEL: pixels}, union), image)


def _mask_label(masks: tuple[Path, ...]) -> Diagnosis | None:
    """``tumor`` for a non-empty mask, ``no_tumor`` for an empty one; None if unreadable
    (load will then say what is wrong)."""
    try:
        return Diagnosis.tumor if any(read_mask_2d(m).any() for m in masks) else Diagnosis.no_tumor
    except UnreadableInput:
        return None


class _Index:
    """The 2D files of the source, by folder and stem."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self.root = root
        self.by_folder: dict[Path, dict[str, Path]] = defaultdict(dict)
        for path in files:
            self.by_folder[path.parent][strip_suffix(path).casefold()] = path
        self._image_folders: dict[Path, Path | None] = {}

    def image_folder(self, parent: Path) -> Path | None:
        """:func:`_image_folder`, once per folder rather than once per file."""
        if parent not in self._image_folders:
            self._image_folders[parent] = _image_folder(self.root, parent)
        return self._image_folders[parent]

    def find(self, folder: Path, key: str) -> Path | None:
        return self.by_folder.get(folder, {}).get(key.casefold())

    def numbered(self, folder: Path, number: str) -> Path | None:
        hits = [
            p
            for stem, p in self.by_folder.get(folder, {}).items()
            if (m := _NUMBERED.search(stem)) and m["n"] == number and "mask" not in stem
        ]
        return hits[0] if len(hits) == 1 else None


def _image_folder(root: Path, parent: Path) -> Path | None:
    """For files in ``parent`` under ``masks/`` with a sibling ``images/``: the folder their
    images would be in."""
    for folder in (parent, *parent.parents):
        if folder == root or root not in folder.parents:
            return None
        if folder.name.lower() in _MASK_DIRS:
            for name in _IMAGE_DIRS:
                sibling = folder.parent / name
                if sibling.is_dir():
                    return sibling / parent.relative_to(folder)
            return None
    return None


def _partner(path: Path, index: _Index) -> tuple[bool, Path | None]:
    """(is this file a mask?, its image). A mask without image is ``(True, None)``."""
    stem = strip_suffix(path)
    suffixed = _MASK_SUFFIX.match(stem)
    numbered = _NUMBERED_MASK.match(stem)
    folder = index.image_folder(path.parent)
    in_mask_dir = folder is not None
    folder = folder or path.parent
    image = index.find(folder, suffixed["key"]) if suffixed else None
    if image is None and in_mask_dir:
        image = index.find(folder, stem)
    if image is None and numbered:
        image = index.numbered(folder, numbered["n"])
    named_mask = bool(numbered) or bool(suffixed and suffixed["kind"].lower() == "mask")
    is_mask = in_mask_dir or image is not None or named_mask
    return is_mask, image


class ImageMaskPairReader:
    name = "image_mask_pairs"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        files = sorted(p for p in unclaimed if is_image_2d(p))
        index = _Index(root, files)
        pairs: dict[Path, list[Path]] = defaultdict(list)
        orphans: list[Path] = []
        for path in files:
            is_mask, image = _partner(path, index)
            if image is not None and image != path:
                pairs[image].append(path)
            elif is_mask:
                orphans.append(path)
        for image in sorted(pairs):
            masks = tuple(pairs[image])
            unclaimed.difference_update((image, *masks))
            yield SourceCase(
                source_format=self.name,
                dataset=dataset_name(root, image),
                subject_key=subject_from_path(root, image),
                files=(image, *masks),
                label=folder_label(root, image) or _mask_label(masks),
                load=partial(load_pair, image, masks),
                modalities=(None,),
                mask_kind="segmentation",
                split_hint=split_hint(root, image),
            )
        for path in orphans:
            unclaimed.discard(path)
            yield Rejection(
                path,
                "mask without a matching image: expected an image of the same name (without "
                "the _mask suffix) beside it, or in the images/ folder next to masks/",
            )
