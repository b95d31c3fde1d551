"""Class folders of 2D images: ``Training/glioma/x.jpg``, ``yes/``/``no/``, ``notumor/``, ...

The label is the nearest folder whose name normalises to a diagnosis (``glioma_tumor``,
``no_tumor``, ``Glioma``, ``brain_tumor``); the split hint the nearest Training/Testing/val
folder. Kaggle sets carry no patient ids, so the subject is the relative path without extension.
This reader runs after the mask and YOLO readers and takes every 2D image left: an image under no
class folder is still ingested, with no label.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from neuroonco.tools.readers._common import (
    dataset_name,
    folder_label,
    is_image_2d,
    read_image_2d,
    split_hint,
    subject_from_path,
)
from neuroonco.tools.readers.base import (
    UNKNOWN_CHANNEL,
    LoadedCase,
    Rejection,
    SourceCase,
    check_loaded,
)


def load_image(path: Path) -> LoadedCase:
    """One grayscale 2D image, as stored, with no mask."""
    return check_loaded(LoadedCase({UNKNOWN_CHANNEL: read_image_2d(path)}), path)


class ClassFolderReader:
    name = "class_folder"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        for path in sorted(p for p in unclaimed if is_image_2d(p)):
            unclaimed.discard(path)
            yield SourceCase(
                source_format=self.name,
                dataset=dataset_name(root, path),
                subject_key=subject_from_path(root, path),
                files=(path,),
                label=folder_label(root, path),
                load=partial(load_image, path),
                modalities=(None,),
                split_hint=split_hint(root, path),
            )
