"""Plain volumes (``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``) with an optional
mask beside them (``<stem>_seg``, ``_mask``, ``_label``, ``_segmentation``, ``_roi``).

The modality comes from a file-name token (``t1``, ``t1ce``, ``t1c``, ``t2``, ``flair``, ...).
Volumes of one folder that differ only in a trailing modality token (``sub01_t1.nii.gz``,
``sub01_flair.nii.gz``) form one multi-channel case, whose mask is ``<core>_seg``. The label is
the class folder's, else None (the slices that show lesion get ``tumor`` from the mask when
sliced). This reader runs after the BraTS readers, so only what they did not recognise reaches it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from neuroonco.schemas.vocabulary import Modality
from neuroonco.tools.readers._common import (
    dataset_name,
    folder_label,
    load_volume_case,
    modality_from_text,
    split_hint,
    strip_suffix,
    volume_suffix,
)
from neuroonco.tools.readers.base import UNKNOWN_CHANNEL, Rejection, SourceCase

_MASK_STEM = re.compile(
    r"^(?P<base>.+?)[_\-.](?:seg|mask|label|labels|segmentation|roi)$", re.IGNORECASE
)
_TRAILING = re.compile(r"^(?P<core>.+)[_\-.](?P<token>[A-Za-z0-9]+)$")
_ORDER = list(Modality)
# Header line naming the data file of a detached-header format.
_DATA_FILE = {".mhd": re.compile(r"^ElementDataFile\s*=\s*(.+)$", re.M),
              ".nhdr": re.compile(r"^data ?file:\s*(.+)$", re.M | re.I)}  # fmt: skip


def _companions(path: Path) -> tuple[Path, ...]:
    """The raw data file of an .mhd/.nhdr header (none for LOCAL/LIST or self-contained)."""
    pattern = _DATA_FILE.get(volume_suffix(path) or "")
    if pattern is None:
        return ()
    try:
        match = pattern.search(path.read_text(encoding="latin-1")[:8192])
    except OSError:
        return ()
    name = match[1].strip() if match else ""
    if not name or name.split()[0].upper() in {"LOCAL", "LIST"} or "%" in name:
        return ()
    return (path.parent / name,)


def _trailing_modality(stem: str) -> tuple[str | None, Modality | None]:
    """(core, modality) when the stem ends in a modality token, else (None, modality anywhere)."""
    match = _TRAILING.match(stem)
    if match and (modality := modality_from_text(match["token"])) is not None:
        return match["core"], modality
    return None, modality_from_text(stem)


class NiftiReader:
    name = "nifti"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        by_folder: dict[Path, list[Path]] = defaultdict(list)
        for path in sorted(unclaimed):
            if volume_suffix(path):
                by_folder[path.parent].append(path)
        for paths in by_folder.values():
            for path in paths:
                unclaimed.discard(path)
                unclaimed.difference_update(_companions(path))
            yield from self._folder(root, paths)

    def _folder(self, root: Path, paths: list[Path]) -> Iterator[SourceCase | Rejection]:
        masks: dict[str, Path] = {}
        groups: dict[str | None, list[tuple[Path, Modality | None]]] = defaultdict(list)
        singles: list[tuple[Path, Modality | None, str | None]] = []
        for path in paths:
            stem = strip_suffix(path)
            if match := _MASK_STEM.match(stem):
                masks[match["base"].casefold()] = path
                continue
            core, modality = _trailing_modality(stem)
            groups[core].append((path, modality))
        for core, members in groups.items():
            modalities = [m for _, m in members]
            if core is not None and len(members) > 1 and len(set(modalities)) == len(members):
                mask = masks.pop(core.casefold(), None)
                members.sort(key=lambda pm: _ORDER.index(pm[1]))  # type: ignore[arg-type]
                yield self._case(root, members, mask, core)
            else:
                singles.extend((p, m, core if len(members) == 1 else None) for p, m in members)
        for path, modality, core in sorted(singles, key=lambda s: s[0]):
            stem = strip_suffix(path)
            mask = masks.pop(stem.casefold(), None) or (
                masks.pop(core.casefold(), None) if core else None
            )
            yield self._case(root, [(path, modality)], mask, stem)
        for path in sorted(masks.values()):
            yield Rejection(
                path,
                "mask without a matching volume: expected the image beside it, named like the "
                "mask without its _seg/_mask/_label suffix",
            )

    def _case(
        self,
        root: Path,
        members: list[tuple[Path, Modality | None]],
        mask: Path | None,
        name: str,
    ) -> SourceCase:
        primary = members[0][0]
        channels = {(m.value if m else UNKNOWN_CHANNEL): p for p, m in members}
        files = [*channels.values(), *((mask,) if mask else ())]
        files += [c for f in list(files) for c in _companions(f)]
        return SourceCase(
            source_format=self.name,
            dataset=dataset_name(root, primary),
            subject_key=primary.parent.relative_to(root).joinpath(name).as_posix(),
            files=tuple(files),
            # No class folder, no label: slices with lesion get "tumor" from the mask downstream.
            label=folder_label(root, primary),
            load=partial(load_volume_case, channels, mask),
            modalities=tuple(m for _, m in members),
            mask_kind="segmentation" if mask else None,
            split_hint=split_hint(root, primary),
        )
