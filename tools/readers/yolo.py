"""YOLO detection and segmentation labels: ``images/x.jpg`` + ``labels/x.txt``.

As in Ultralytics, an image's label file is its path with the last ``images`` folder replaced by
``labels`` and the extension by ``.txt``, so both ``train/images`` + ``train/labels`` and
``images/train`` + ``labels/train`` work. Class names come from the nearest ``data.yaml`` (``names``
as a list or a dict) above the images, else a ``classes.txt``. Rows are ``class xc yc w h`` (box)
or ``class x1 y1 x2 y2 ...`` (polygon), coordinates normalised to 0..1.

All objects of an image go into one binary mask (polygons rasterised, boxes filled:
``mask_kind="box"`` when there is no polygon). The case's class is that of the largest object; a
class name that is no diagnosis still means a lesion (``tumor``). An image with no objects is
``no_tumor`` when the dataset has a negative class, else unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from neuroonco.schemas.vocabulary import Diagnosis, normalise_label
from neuroonco.tools.readers._common import (
    dataset_name,
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

_CLASS_FILES = ("classes.txt", "obj.names")
_YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class _Object:
    cls: int
    points: tuple[float, ...]  # x y pairs (polygon) or xc yc w h (box)
    is_box: bool

    @property
    def area(self) -> float:
        if self.is_box:
            return self.points[2] * self.points[3]
        xs, ys = self.points[0::2], self.points[1::2]
        return 0.5 * abs(sum(xs[i - 1] * ys[i] - xs[i] * ys[i - 1] for i in range(len(xs))))


def parse_label_file(path: Path) -> list[_Object]:
    """The objects of a YOLO label file; raises ValueError saying which line is wrong."""
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = float(fields[0]), tuple(float(v) for v in fields[1:])
        except ValueError:
            cls, values = -1.0, ()
        if not (cls >= 0 and cls.is_integer()) or not (
            len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0)
        ):
            raise ValueError(
                f"line {number}: expected 'class xc yc w h' or 'class x1 y1 x2 y2 x3 y3 ...'"
            )
        # A little slack for exporters' rounding; NaN fails the comparison too.
        if not all(-0.5 <= v <= 1.5 for v in values):
            raise ValueError(f"line {number}: coordinates must be normalised to 0..1")
        objects.append(_Object(int(cls), values, is_box=len(values) == 4))
    return objects


def rasterise(objects: tuple[_Object, ...], width: int, height: int) -> np.ndarray:
    """One uint8 0/1 mask holding every object (polygons filled, boxes as rectangles)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        if obj.is_box:
            xc, yc, w, h = obj.points
            box = ((xc - w / 2) * width, (yc - h / 2) * height)
            draw.rectangle((*box, (xc + w / 2) * width - 1, (yc + h / 2) * height - 1), fill=1)
        else:
            xy = list(zip(obj.points[0::2], obj.points[1::2], strict=True))
            draw.polygon([(x * width, y * height) for x, y in xy], fill=1, outline=1)
    return np.asarray(canvas, dtype=np.uint8)


def load_yolo(image: Path, lesions: tuple[_Object, ...]) -> LoadedCase:
    pixels = read_image_2d(image)
    mask = rasterise(lesions, pixels.shape[1], pixels.shape[0]) if lesions else None
    return check_loaded(LoadedCase({UNKNOWN_CHANNEL: pixels}, mask), image)


def _label_path(root: Path, image: Path) -> Path | None:
    parts = image.relative_to(root).parts
    folders = [i for i, part in enumerate(parts[:-1]) if part.lower() == "images"]
    if not folders:
        return None
    i = folders[-1]
    labels = "Labels" if parts[i] == "Images" else "labels"
    return root.joinpath(*parts[:i], labels, *parts[i + 1 : -1], image.stem + ".txt")


def _names(path: Path) -> dict[int, str] | None:
    """Class names of a data.yaml / classes.txt; None when the file has none."""
    if path.suffix.lower() not in _YAML_SUFFIXES:
        lines = path.read_text(encoding="utf-8").splitlines()
        return {i: name.strip() for i, name in enumerate(lines) if name.strip()} or None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    return None


class _NameFinder:
    """Finds (and consumes) the class-name file nearest to each image, parsing each once."""

    def __init__(self, root: Path, unclaimed: set[Path]) -> None:
        self.root, self.unclaimed = root, unclaimed
        self.files: dict[Path, list[Path]] = {}
        for p in sorted(unclaimed):
            lowered = p.name.lower()
            if lowered.endswith(_YAML_SUFFIXES) or lowered in _CLASS_FILES:
                # A classes.txt inside labels/ serves the folder above it.
                owner = p.parent.parent if p.parent.name.lower() == "labels" else p.parent
                self.files.setdefault(owner, []).append(p)
        self.cache: dict[Path, dict[int, str] | None] = {}
        self.rejections: list[Rejection] = []

    def find(self, image: Path) -> dict[int, str] | None:
        for folder in (image.parent, *image.parent.parents):
            if folder not in self.cache:
                self.cache[folder] = self._names_in(folder)
            if self.cache[folder] is not None or folder == self.root:
                return self.cache[folder]
        return None

    def _names_in(self, folder: Path) -> dict[int, str] | None:
        preferred = ("data.yaml", "dataset.yaml", "data.yml")
        for path in sorted(self.files.get(folder, []), key=lambda p: p.name not in preferred):
            try:
                names = _names(path)
            except (yaml.YAMLError, UnicodeDecodeError, ValueError, TypeError) as exc:
                self.unclaimed.discard(path)
                self.rejections.append(Rejection(path, f"unreadable class names: {exc}"))
                continue
            if names is not None:
                self.unclaimed.discard(path)
                return names
        return None


class YoloReader:
    name = "yolo"

    def claim(self, root: Path, unclaimed: set[Path]) -> Iterator[SourceCase | Rejection]:
        labels = {
            p
            for p in unclaimed
            if p.suffix.lower() == ".txt"
            and "labels" in (part.lower() for part in p.relative_to(root).parts[:-1])
            and p.name.lower() not in _CLASS_FILES
        }
        label_dirs = {p.parent for p in labels}
        finder = _NameFinder(root, unclaimed)
        for image in sorted(p for p in unclaimed if is_image_2d(p)):
            label = _label_path(root, image)
            if label is None or label.parent not in label_dirs:
                continue
            found = label in labels
            unclaimed.difference_update((image, label))
            labels.discard(label)
            names = finder.find(image)
            yield from finder.rejections
            finder.rejections.clear()
            yield from self._case(root, image, label if found else None, names)
        for label in sorted(labels):
            unclaimed.discard(label)
            yield Rejection(
                label,
                "YOLO label file without an image: expected an image of the same name (.jpg, "
                ".png, ...) in the images/ folder that matches this labels/ folder",
            )

    def _case(
        self, root: Path, image: Path, label: Path | None, names: dict[int, str] | None
    ) -> Iterator[SourceCase | Rejection]:
        try:
            objects = parse_label_file(label) if label else []
            unknown = sorted({o.cls for o in objects} - set(names or {})) if names else []
            if unknown:
                raise ValueError(f"class ids {unknown} are not in the dataset's names")
        except (ValueError, UnicodeDecodeError) as exc:
            reason = f"bad YOLO label file {label.name if label else ''}: {exc}; fix or remove it"
            yield from (Rejection(p, reason) for p in (image, label) if p)
            return
        diagnosis = {c: normalise_label(n) for c, n in (names or {}).items()}
        lesions = tuple(o for o in objects if diagnosis.get(o.cls) is not Diagnosis.no_tumor)
        if lesions:
            largest = max(lesions, key=lambda o: o.area)
            case_label = diagnosis.get(largest.cls) or Diagnosis.tumor
        elif objects or Diagnosis.no_tumor in diagnosis.values():
            case_label = Diagnosis.no_tumor
        else:
            case_label = None
        kind = None if not lesions else "box" if all(o.is_box for o in lesions) else "segmentation"
        yield SourceCase(
            source_format=self.name,
            dataset=dataset_name(root, image),
            subject_key=subject_from_path(root, image),
            files=(image, label) if label else (image,),
            label=case_label,
            load=partial(load_yolo, image, lesions),
            modalities=(None,),
            mask_kind=kind,
            split_hint=split_hint(root, image),
        )
