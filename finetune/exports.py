"""Writers for the formats fine-tuning tools read, streamed one record at a time.

- ``llamafactory``: sharegpt ``messages`` + ``images`` JSONL per split and ``dataset_info.json``
  (layout fixed in INTERFACES.md; ms-swift reads the same records);
- ``llava``: one JSON array per split of ``{"id", "image", "conversations"}`` with ``<image>``;
- ``openai``: chat fine-tuning JSONL, the image inlined as a data URL;
- ``hf``: a ``datasets`` DatasetDict on disk with an ``Image`` feature and a dataset card
  (see :mod:`neuroonco.finetune.hf_export`).

Each format folder holds its own ``images/`` (hard links to the store's PNGs where the file system
allows, else copies), so a folder can be moved or uploaded on its own. Every record is validated
(:func:`~neuroonco.finetune.records.validate_messages`) before it is written.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from neuroonco.finetune.offload import Offload
from neuroonco.finetune.records import (
    IMAGE_TOKEN,
    Instruction,
    InvalidRecord,
    encode_string,
    validate_messages,
)
from neuroonco.finetune.splits import SPLITS

FORMATS = ("llamafactory", "llava", "openai", "hf")
PlaceImages = Callable[[list[tuple[str, str, str, str]]], None]


def llamafactory_info() -> dict[str, Any]:
    tags = {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "system_tag": "system",
    }
    return {
        f"neuroonco_{split}": {
            "file_name": f"{split}.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": tags,
        }
        for split in SPLITS
    }


def place_image(source: Path | str, target: Path | str) -> None:
    """``target`` becomes the same file as ``source`` (a hard link, else a copy)."""
    try:
        os.link(source, target)
    except (FileExistsError, FileNotFoundError):
        if not os.path.isfile(source):
            raise FileNotFoundError(source) from None
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)


class ImageLinks:
    """The slices' images placed in batches of a few hundred, away from the generator.

    ``os.link`` is a system call that releases the GIL; made inline, or on a thread, each one is
    a hand-over of the GIL that the generator pays for. So batches go to ``place`` when given
    (the export's store writer process, :meth:`~neuroonco.finetune.rowsink.RowSink.place_images`,
    which places them in order with the rows), else to a thread of their own. A missing source is
    raised, as the record error it is, by :meth:`drain` or by whoever ``place`` reports to (the
    export then fails before anything is renamed into place).
    """

    BATCH = 256

    def __init__(self, place: Callable[[list[tuple[str, str, str, str]]], None] | None = None):
        self._batch: list[tuple[str, str, str, str]] = []
        self._offload = Offload() if place is None else None
        self._place = place

    def add(self, source: str, target: str, slice_id: str, image: str) -> None:
        self._batch.append((source, target, slice_id, image))
        if len(self._batch) >= self.BATCH:
            self._submit()

    def drain(self) -> None:
        if self._batch:
            self._submit()
        if self._offload is not None:
            self._offload.drain()

    def _submit(self) -> None:
        if self._place is not None:
            self._place(self._batch)
        else:
            self._offload.submit(place_all, self._batch)  # type: ignore[union-attr]
        self._batch = []

    def close(self) -> None:
        if self._offload is not None:
            self._offload.close()


def place_all(batch: list[tuple[str, str, str, str]]) -> None:
    """Place each (source, target, slice id, image) in turn; a missing source is an
    :class:`~neuroonco.finetune.records.InvalidRecord` naming the slice."""
    for source, target, slice_id, image in batch:
        try:
            place_image(source, target)
        except FileNotFoundError:
            raise InvalidRecord(
                f"slice {slice_id}: image {image} is missing from the store"
            ) from None


class Writer:
    """Base: one folder, one open file per split, the slice's image placed once."""

    name = ""
    suffix = ".jsonl"
    places_images = True

    def __init__(self, root: Path, store_root: Path, place: PlaceImages | None = None) -> None:
        self.root = root / self.name
        self.root.mkdir(parents=True)
        self.links: ImageLinks | None = None
        if self.places_images:
            (self.root / "images").mkdir()
            self.links = ImageLinks(place)
        self.store_root = store_root
        self.files: dict[str, TextIO] = {}
        self.counts = dict.fromkeys(SPLITS, 0)
        self._last_slice: str | None = None
        self._image = ""

    def _file(self, split: str) -> TextIO:
        handle = self.files.get(split)
        if handle is None:
            # A large buffer: a few hundred writes for a large set, not one per 8 KiB.
            path = self.root / f"{split}{self.suffix}"
            handle = path.open("w", encoding="utf-8", buffering=1 << 20)
            self.files[split] = handle
        return handle

    def image_for(self, item: Instruction) -> str:
        """The record's image path relative to the format folder (placed on first use)."""
        if item.slice_id != self._last_slice:  # a slice's instructions come together
            rel = f"images/{item.slice_id}.png"
            # Plain strings: a path object per slice costs more than the link.
            source, target = os.path.join(self.store_root, item.image), os.path.join(self.root, rel)
            self.links.add(source, target, item.slice_id, item.image)
            self._last_slice, self._image = item.slice_id, rel
        return self._image

    def write(self, item: Instruction) -> None:
        image = self.image_for(item)
        handle = self._file(item.split)
        handle.write(self.encode(item, image))
        self.counts[item.split] += 1

    def write_slice(self, items: list[Instruction]) -> None:
        """Every instruction of one slice, in order (the exporter's hot path)."""
        for item in items:
            self.write(item)

    def encode(self, item: Instruction, image: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the files; raises if an image could not be placed."""
        for split in SPLITS:  # every split file exists, even empty, so loaders find all three
            self._file(split)
        for handle in self.files.values():
            handle.close()
        if self.links is not None:
            self.links.drain()
            self.release()

    def release(self) -> None:
        """Stop the background work (also after a failure; idempotent)."""
        if self.links is not None:
            self.links.close()


_LF_HEAD = '{"messages": [{"role": "user", "content": '
_LF_MID = '}, {"role": "assistant", "content": '


class LlamaFactoryWriter(Writer):
    name = "llamafactory"
    _tail_of: str | None = None
    _tail = ""

    # Records are written by hand, byte for byte what json.dumps(record, ensure_ascii=False)
    # gives, from the user turn the generator encoded once (`Instruction.user_json`).
    def encode(self, item: Instruction, image: str) -> str:
        """The record's line, validated (see :func:`_checked_line`)."""
        return _checked_line(item, '}], "images": [' + encode_string(image) + "]}\n")

    def write_slice(self, items: list[Instruction]) -> None:
        """One slice's lines in one write: the image placed and its JSON encoded once, each
        record checked and encoded in one loop (fields by position: records._FIELDS)."""
        if not items:
            return
        first = items[0]
        slice_id, split = first[1], first[8]
        if any(i[1] != slice_id or i[8] != split for i in items):
            super().write_slice(items)  # not one slice's: record by record
            return
        image = self.image_for(first)  # placed (and checked) once per slice
        if image != self._tail_of:
            self._tail_of, self._tail = image, '}], "images": [' + encode_string(image) + "]}\n"
        tail, encode, token = self._tail, encode_string, IMAGE_TOKEN
        lines = []
        for item in items:
            user, response = item[21], item[10]
            if user.count(token) != 1 or not response or token in response or response.isspace():
                _checked_line(item, tail)  # raises, saying what is wrong
            lines.append(f"{_LF_HEAD}{user}{_LF_MID}{encode(response)}{tail}")
        self._file(split).write("".join(lines))
        self.counts[split] += len(items)

    def close(self) -> None:
        super().close()
        info = json.dumps(llamafactory_info(), indent=2)
        (self.root / "dataset_info.json").write_text(info + "\n", encoding="utf-8")


def _checked_line(item: Instruction, tail: str) -> str:
    """``item``'s llamafactory line ending in ``tail``, validated: one <image> token in the user
    turn (JSON encoding neither makes nor hides one), a non-empty assistant turn without one,
    user then assistant."""
    user, response = item.user_json, item.response
    if user.count(IMAGE_TOKEN) != 1:
        raise InvalidRecord(f"{user.count(IMAGE_TOKEN)} {IMAGE_TOKEN} token(s) for 1 image")
    if not response or response.isspace() or IMAGE_TOKEN in response:
        raise InvalidRecord("the assistant turn is empty or holds an image token")
    return f"{_LF_HEAD}{user}{_LF_MID}{encode_string(response)}{tail}"


class LlavaWriter(Writer):
    """LLaVA's conversations JSON; an array streamed element by element."""

    name = "llava"
    suffix = ".json"

    def _file(self, split: str) -> TextIO:
        fresh = split not in self.files
        handle = super()._file(split)
        if fresh:
            handle.write("[\n")
        return handle

    def encode(self, item: Instruction, image: str) -> str:
        messages = item.messages()
        validate_messages(messages, [image], self.root, check_files=False)  # placed
        user = messages[0]["content"].replace(IMAGE_TOKEN, IMAGE_TOKEN + "\n", 1)
        record = {
            "id": item.id,
            "image": image,
            "conversations": [
                {"from": "human", "value": user},
                {"from": "gpt", "value": messages[1]["content"]},
            ],
        }
        lead = ",\n" if self.counts[item.split] else ""
        return lead + json.dumps(record, ensure_ascii=False)

    def close(self) -> None:
        for split in SPLITS:
            self._file(split).write("\n]\n")
        super().close()


class OpenAIWriter(Writer):
    """OpenAI chat fine-tuning JSONL: the image is a base64 data URL in the user turn."""

    name = "openai"
    places_images = False

    def __init__(self, root: Path, store_root: Path) -> None:
        super().__init__(root, store_root)
        self._url_for: tuple[str, str] = ("", "")

    def image_for(self, item: Instruction) -> str:
        # No images/ folder: the data URL is the image. Only the current slice's is kept.
        if self._url_for[0] != item.slice_id:
            data = (self.store_root / item.image).read_bytes()
            url = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            self._url_for = (item.slice_id, url)
        return self._url_for[1]

    def encode(self, item: Instruction, image: str) -> str:
        messages = item.messages()
        validate_messages(messages, [image], None, check_files=False)
        text = messages[0]["content"].replace(IMAGE_TOKEN, "")
        record = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image}},
                        {"type": "text", "text": text},
                    ],
                },
                {"role": "assistant", "content": messages[1]["content"]},
            ]
        }
        return json.dumps(record, ensure_ascii=False) + "\n"


def make_writers(
    formats: list[str], root: Path, store_root: Path, place: PlaceImages | None = None
) -> list[Writer]:
    """One writer per format; ``place`` takes their image links (see :class:`ImageLinks`)."""
    from neuroonco.finetune.hf_export import HFWriter  # datasets is imported only when used

    classes: dict[str, type[Writer]] = {
        "llamafactory": LlamaFactoryWriter,
        "llava": LlavaWriter,
        "openai": OpenAIWriter,
        "hf": HFWriter,
    }
    return [
        classes[name](root, store_root, place)
        if classes[name].places_images
        else classes[name](root, store_root)
        for name in formats
    ]
