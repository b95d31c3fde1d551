"""The Medical Segmentation Decathlon and nnU-Net layouts.

A dataset folder holds ``imagesTr/`` and ``labelsTr/`` (training images and their label
volumes), optionally ``imagesTs/`` (test images without labels), and a ``dataset.json`` that names
the channels and the labels:

- Decathlon (``Task01_BrainTumour``): one file per case, ``imagesTr/BRATS_001.nii.gz``, whose
  4th axis is the sequences named by ``"modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd",
  "3": "T2w"}``; labels ``"labels": {"0": "background", "1": "edema", ...}``.
- nnU-Net v2 (``Dataset001_BrainTumour``): one file per channel, ``imagesTr/BRATS_001_0000.nii.gz``
  (the four digits index ``"channel_names"``), labels ``{"background": 0, "edema": 1, ...}``
  (region lists such as ``"whole tumor": [1, 2, 3]`` name no single label and are skipped).

Files under ``labelsTr/`` are masks, never images: a label volume without its image is rejected.
Channels whose names are not MR sequences of the vocabulary (``ADC``, ``perfusion``) are left
out; a dataset whose channels are not MR (``CT``) or whose description names a body part other
than the brain is rejected with the reason. The diagnosis comes from the dataset's name and
description (``Gliomas ...`` -> glioma), else from a class folder, else None (slices showing
lesion become ``tumor``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from neuroonco.errors import UnreadableInput
from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers._common import (
    Stored,
    canonical_case,
    checked_case,
    folder_label,
    is_image_2d,
    modality_from_text,
    read_image_2d,
    read_mask_2d,
    read_stored,
    strip_suffix,
    volume_suffix,
)
from neuroonco.tools.readers.base import (
    UNKNOWN_CHANNEL,
    LoadedCase,
    Rejection,
    SourceCase,
    check_loaded,
)

IMAGE_DIRS = {"imagestr": "train", "imagests": "test", "imagesva": "val", "imagesval": "val"}
LABEL_DIRS = {"labelstr", "labelsts", "labelsva", "labelsval"}
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_NOT_MR = re.compile(r"^(ct|pet|spect|us|ultrasound|x-?ray|cbct)\b", re.I)
_OTHER_ORGANS = re.compile(
    r"\b(heart|cardiac|atri(um|al)|liver|hepatic|lung|pancrea\w*|spleen|colon|prostate|kidney|"
    r"renal|abdom\w*|breast|knee|spine)\b",
    re.I,
)
_DIAGNOSES = (
    (re.compile(r"glioma|glioblastoma|\bgbm\b|\bbrats\b", re.I), Diagnosis.glioma),
    (re.compile(r"meningioma", re.I), Diagnosis.meningioma),
    (re.compile(r"metasta", re.I), Diagnosis.metastasis),
)
_REGIONS = (
    (re.compile(r"non[\s_-]*enhanc", re.I), "non_enhancing"),
    (re.compile(r"necro", re.I), "necrotic_core"),
    (re.compile(r"enhanc", re.I), "enhancing"),
    (re.compile(r"o?edema", re.I), "edema"),
    (re.compile(r"cyst", re.I), "cystic"),
)


@dataclass
class DatasetInfo:
    """What a ``dataset.json`` says (or nothing, when there is none)."""

    name: str
    channels: dict[int, str] = field(default_factory=dict)
    """Channel index -> its name as written (``FLAIR``, ``T1w``)."""
    labels: dict[int, str] = field(default_factory=dict)
    """Label value -> sub-region name (background left out)."""
    description: str = ""
    problem: str | None = None
    """Why the whole dataset is refused (not MR, not brain, unreadable json), else None."""


def _region(name: str) -> str:
    for pattern, region in _REGIONS:
        if pattern.search(name):
            return region
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "label"


def read_dataset_json(folder: Path) -> DatasetInfo:
    """The channel and label names of a Decathlon or nnU-Net v2 ``dataset.json``."""
    path = folder / "dataset.json"
    info = DatasetInfo(name=folder.name)
    if not path.is_file():
        return info
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        info.problem = f"dataset.json is not readable JSON ({exc}); fix or remove it"
        return info
    info.name = str(meta.get("name") or folder.name)
    info.description = " ".join(str(meta.get(k) or "") for k in ("name", "description"))
    channels = meta.get("channel_names") or meta.get("modality") or {}
    if isinstance(channels, dict):
        for key, value in channels.items():
            if str(key).isdigit():
                info.channels[int(key)] = str(value)
    labels = meta.get("labels") or {}
    if isinstance(labels, dict):
        for key, value in labels.items():
            # Decathlon: {"1": "edema"}; nnU-Net v2: {"edema": 1} (lists are regions: skipped).
            if str(key).isdigit():
                number, name = int(key), str(value)
            elif isinstance(value, int):
                number, name = value, str(key)
            else:
                continue
            if number != 0 and name.lower() != "background":
                info.labels[number] = _region(name)
    not_mr = [n for n in info.channels.values() if _NOT_MR.match(n.strip())]
    if not_mr:
        info.problem = (
            f"dataset.json names {', '.join(sorted(set(not_mr)))} channels: not MRI; "
            "only brain MRI is ingested"
        )
    elif organ := _OTHER_ORGANS.search(info.description):
        info.problem = (
            f"dataset.json describes {organ[0]} images: only brain MRI is ingested; "
            "remove this dataset from the source"
        )
    return info


def _channel_map(info: DatasetInfo) -> dict[int, str]:
    """Channel index -> the key its array gets (a Modality value, or ``unknown`` when a single
    unnamed MR channel); channels that are not vocabulary sequences are left out."""
    if not info.channels:
        return {0: UNKNOWN_CHANNEL}
    out: dict[int, str] = {}
    for index in sorted(info.channels):
        modality = modality_from_text(info.channels[index])
        if modality is not None and modality.value not in out.values():
            out[index] = modality.value
    if not out and len(info.channels) == 1:  # "MRI", "MR": one sequence, name unknown
        out[next(iter(info.channels))] = UNKNOWN_CHANNEL
    return out


def _diagnosis(info: DatasetInfo, root: Path, path: Path) -> Diagnosis | None:
    for pattern, diagnosis in _DIAGNOSES:
        if pattern.search(info.description):
            return diagnosis
    return folder_label(root, path.parent.parent)


def load_msd_case(
    files: dict[int, Path],
    channels: dict[int, str],
    label: Path | None,
    mask_labels: dict[int, str],
) -> LoadedCase:
    """Read one case: a single 4D file (``files`` maps every channel to it) or one 3D file per
    channel; the label volume becomes the mask. A 2D nnU-Net dataset (PNG channels) gives 2D
    images as stored."""
    first = next(iter(files.values()))
    if is_image_2d(first):
        images = {key: read_image_2d(files[i]) for i, key in channels.items()}
        mask2d = None if label is None else read_mask_2d(label)
        misfit = mask2d is not None and mask2d.shape != images[next(iter(images))].shape
        loaded = LoadedCase(images, mask2d, mask_labels=dict(mask_labels))
        return check_loaded(loaded, label if misfit and label else first)
    stored: dict[str, Stored] = {}
    where: dict[str, Path] = {}
    cache: dict[Path, Stored] = {}
    for index, key in channels.items():
        path = files[index]
        if path not in cache:
            cache[path] = read_stored(path, channels=True)
        whole = cache[path]
        if whole.array.ndim == 4:
            if index >= whole.array.shape[0]:
                raise UnreadableInput(
                    f"{path.name}: dataset.json names channel {index} but the file has "
                    f"{whole.array.shape[0]} along its 4th axis; fix dataset.json"
                )
            stored[key] = Stored(whole.array[index], whole.grid)
        elif len(set(files.values())) == 1 and index > 0:
            raise UnreadableInput(
                f"{path.name}: a 3D file, but dataset.json names {len(channels)} channels; "
                "give one file per channel (name_0000, name_0001, ...) or a 4D file"
            )
        else:
            stored[key] = whole
        where[key] = path
    mask = None if label is None else read_stored(label, mask=True)
    case = canonical_case(stored, mask, where, label, mask_labels)
    return checked_case(case, label, next(iter(where.values())))


def _split_key(folder: str) -> str:
    """``imagesTr``/``labelsTr`` -> ``tr``: the part that pairs an image folder with its labels."""
    name = folder.casefold()
    return name.removeprefix("images").removeprefix("labels")


def _dataset_dir(path: Path) -> Path | None:
    parent = path.parent.name.casefold()
    if parent in IMAGE_DIRS or parent in LABEL_DIRS:
        return path.parent.parent
    return None


class MsdReader:
    name = "msd"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        datasets: dict[Path, list[Path]] = defaultdict(list)
        for path in sorted(unclaimed):
            folder = _dataset_dir(path)
            if folder is not None and (volume_suffix(path) or is_image_2d(path)):
                datasets[folder].append(path)
        for folder, paths in datasets.items():
            unclaimed.difference_update(paths)
            unclaimed.discard(folder / "dataset.json")
            yield from self._dataset(root, folder, paths)

    def _dataset(
        self, root: Path, folder: Path, paths: list[Path]
    ) -> Iterator[SourceCase | Rejection]:
        info = read_dataset_json(folder)
        if info.problem is not None:
            for path in paths:
                yield Rejection(path, info.problem)
            return
        channels = _channel_map(info)
        if not channels:
            names = ", ".join(info.channels.values())
            for path in paths:
                yield Rejection(
                    path,
                    f"dataset.json channels ({names}) name no MR sequence NeuroOnco knows "
                    "(T1, T1 post-contrast, T2, FLAIR); rename them in dataset.json",
                )
            return
        # labelsTr/ pairs with imagesTr/, labelsTs/ with imagesTs/ (same-named cases differ).
        labels = {
            (_split_key(p.parent.name), strip_suffix(p).casefold()): p
            for p in paths
            if p.parent.name.casefold() in LABEL_DIRS
        }
        cases: dict[tuple[Path, str], dict[int, Path]] = defaultdict(dict)
        for path in paths:
            if path.parent.name.casefold() in LABEL_DIRS:
                continue
            stem = strip_suffix(path)
            split = _CHANNEL_FILE.match(stem)
            if split and (len(info.channels) > 1 or not info.channels or stem[-4:] == "0000"):
                cases[(path.parent, split["case"])][int(split["channel"])] = path
            else:
                # One file per case (Decathlon): every channel lies along its 4th axis.
                cases[(path.parent, stem)] = dict.fromkeys(channels, path)
        used: set[Path] = set()
        for (images_dir, case_id), files in sorted(cases.items()):
            label = labels.get((_split_key(images_dir.name), case_id.casefold()))
            missing = [i for i in channels if i not in files]
            if missing:
                need = ", ".join(
                    f"{case_id}_{i:04d} ({info.channels.get(i, '?')})" for i in missing
                )
                for path in files.values():
                    yield Rejection(path, f"nnU-Net case {case_id} lacks {need}: add the files")
                continue
            if label is not None:
                used.add(label)
            wanted = {i: files[i] for i in channels}
            skipped = sorted(set(files.values()) - set(wanted.values()))
            for path in skipped:
                name = info.channels.get(int(strip_suffix(path)[-4:]), "?")
                yield Rejection(
                    path, f"channel {name!r} is not an MR sequence of the vocabulary; left out"
                )
            primary = next(iter(wanted.values()))
            all_files = tuple(dict.fromkeys([*wanted.values(), *((label,) if label else ())]))
            yield SourceCase(
                source_format=self.name,
                dataset=info.name,
                subject_key=f"{info.name}/{case_id}",
                files=all_files,
                label=_diagnosis(info, root, primary),
                load=partial(load_msd_case, wanted, channels, label, info.labels),
                modalities=tuple(
                    None if k == UNKNOWN_CHANNEL else Modality(k) for k in channels.values()
                ),
                mask_kind="segmentation" if label else None,
                channel_files={channels[i]: p for i, p in wanted.items()},
                split_hint=IMAGE_DIRS.get(images_dir.name.casefold()),
            )
        for path in sorted(set(labels.values()) - used):
            yield Rejection(
                path,
                "label volume without its image: expected imagesTr/ to hold a case of the same "
                "name (a label map is never read as an MR image)",
            )
