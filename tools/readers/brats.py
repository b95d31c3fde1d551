"""BraTS case folders: the 2018-2021 naming (``BraTS2021_00000_t1ce.nii.gz``) and the 2023+
naming (``BraTS-GLI-00000-000-t1c.nii.gz``).

Files are grouped by case id and folder, so flat dumps work as well as one folder per case. A
case needs all four sequences; the segmentation is optional (validation sets ship without it).
A case missing a sequence is rejected, file by file, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import ClassVar

from neuroonco.schemas.vocabulary import Diagnosis, Modality
from neuroonco.tools.readers._common import load_volume_case, split_hint
from neuroonco.tools.readers.base import Rejection, SourceCase

_GLIOMA_REGIONS = {1: "necrotic_core", 2: "edema", 3: "enhancing"}
# BraTS-PEDs numbers its sub-regions differently (ET, NET, CC, ED).
_PED_REGIONS = {1: "enhancing", 2: "non_enhancing", 3: "cystic", 4: "edema"}

_TAG_DIAGNOSIS = {
    "GLI": Diagnosis.glioma,
    "PED": Diagnosis.glioma,
    "SSA": Diagnosis.glioma,
    "MEN": Diagnosis.meningioma,
    "MET": Diagnosis.metastasis,
}


class _BratsReader:
    """Shared grouping: subclasses give the file pattern and the per-case metadata."""

    name: str
    pattern: ClassVar[re.Pattern[str]]
    sequences: ClassVar[dict[str, Modality]]
    relabel: ClassVar[dict[int, int] | None] = None

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        groups: dict[tuple[Path, str], dict[str, list[Path]]] = {}
        for path in sorted(unclaimed):
            if match := self.pattern.match(path.name):
                by_seq = groups.setdefault((path.parent, match["case"]), {})
                by_seq.setdefault(match["seq"].lower(), []).append(path)
        for (_, case_id), found in groups.items():
            for paths in found.values():
                unclaimed.difference_update(paths)
            yield from self._case(root, case_id, found)

    def _case(
        self, root: Path, case_id: str, found: dict[str, list[Path]]
    ) -> Iterator[SourceCase | Rejection]:
        for paths in found.values():
            for extra in paths[1:]:
                yield Rejection(extra, f"duplicate of {paths[0].name} in BraTS case {case_id}")
        missing = [seq for seq in self.sequences if seq not in found]
        if missing:
            needed = ", ".join(self.sequences)
            reason = (
                f"BraTS case {case_id} lacks {', '.join(missing)}; a case needs {needed} "
                "(seg optional): add the missing files or remove the case"
            )
            for paths in found.values():
                yield Rejection(paths[0], reason)
            return
        channels = {mod.value: found[seq][0] for seq, mod in self.sequences.items()}
        seg = found["seg"][0] if "seg" in found else None
        files = (*channels.values(), *((seg,) if seg else ()))
        yield SourceCase(
            source_format=self.name,
            dataset=self.dataset(case_id),
            subject_key=self.subject(case_id),
            files=files,
            label=self.label(case_id),
            load=partial(
                load_volume_case,
                channels,
                seg,
                mask_labels=self.mask_labels(case_id),
                relabel=self.relabel,
            ),
            modalities=tuple(self.sequences.values()),
            mask_kind="segmentation" if seg else None,
            channel_files=channels,
            split_hint=split_hint(root, files[0]) or _split_in_id(case_id),
        )

    def dataset(self, case_id: str) -> str:
        raise NotImplementedError

    def subject(self, case_id: str) -> str:
        return case_id

    def label(self, case_id: str) -> Diagnosis | None:
        return Diagnosis.glioma

    def mask_labels(self, case_id: str) -> dict[int, str]:
        return _GLIOMA_REGIONS


def _split_in_id(case_id: str) -> str | None:
    """BraTS 2018-2020 put the split in the id: BraTS20_Training_001, BraTS20_Validation_001."""
    lowered = case_id.lower()
    if "_training_" in lowered:
        return "train"
    return "val" if "_validation_" in lowered else None


class Brats2021Reader(_BratsReader):
    """``BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz`` (also BraTS 2018-2020 ids); labels
    1 necrotic core, 2 edema, 4 enhancing, relabelled 4 -> 3 on load."""

    name = "brats2021"
    pattern = re.compile(
        r"^(?P<case>BraTS\d*_[A-Za-z0-9_]+?)_(?P<seq>t1ce|t1|t2|flair|seg)\.nii(?:\.gz)?$", re.I
    )
    sequences: ClassVar[dict[str, Modality]] = {
        "t1": Modality.t1,
        "t1ce": Modality.t1ce,
        "t2": Modality.t2,
        "flair": Modality.flair,
    }
    relabel: ClassVar[dict[int, int] | None] = {4: 3}

    def dataset(self, case_id: str) -> str:
        digits = re.match(r"brats(\d*)", case_id, re.I)
        return f"BraTS{digits[1] if digits else ''}"


class Brats2023Reader(_BratsReader):
    """``BraTS-<TAG>-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``; the tag (GLI, PED, SSA, MEN, MET)
    gives the diagnosis, the last number is the time point (the subject is the rest)."""

    name = "brats2023"
    pattern = re.compile(
        r"^(?P<case>BraTS-[A-Za-z]+-\d+-\d+)-(?P<seq>t1n|t1c|t2w|t2f|seg)\.nii(?:\.gz)?$", re.I
    )
    sequences: ClassVar[dict[str, Modality]] = {
        "t1n": Modality.t1,
        "t1c": Modality.t1ce,
        "t2w": Modality.t2,
        "t2f": Modality.flair,
    }

    @staticmethod
    def _tag(case_id: str) -> str:
        return case_id.split("-")[1].upper()

    def dataset(self, case_id: str) -> str:
        return f"BraTS-{self._tag(case_id)}"

    def subject(self, case_id: str) -> str:
        return case_id.rsplit("-", 1)[0]

    def label(self, case_id: str) -> Diagnosis | None:
        return _TAG_DIAGNOSIS.get(self._tag(case_id))

    def mask_labels(self, case_id: str) -> dict[int, str]:
        return _PED_REGIONS if self._tag(case_id) == "PED" else _GLIOMA_REGIONS
