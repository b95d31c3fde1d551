"""The ``hf`` export: a ``datasets`` DatasetDict on disk with an ``Image`` feature, and its card.

Records are staged as JSON lines while the set is generated, then turned into Arrow by
``Dataset.from_generator`` (which writes in batches, so memory stays flat) with the image bytes
embedded: the folder stands alone, ``datasets.load_from_disk`` reads it and ``push_to_hub`` can
upload it as it is. The dataset card (``README.md``) carries the Hub's YAML metadata.

``datasets`` is an optional dependency (the ``finetune`` extra); it is imported here only.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError
from neuroonco.finetune.exports import Writer
from neuroonco.finetune.records import Instruction, InvalidRecord, validate_messages
from neuroonco.finetune.splits import SPLITS

INSTALL_HINT = "pip install 'neuroonco[finetune]'"


def require_datasets() -> Any:
    """The ``datasets`` module, or a one-line error saying how to install it."""
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            f"the hf export needs the `datasets` package: {INSTALL_HINT} (or drop --format hf)"
        ) from exc
    return datasets


def features() -> Any:
    ds = require_datasets()
    text = ds.Value("string")
    return ds.Features(
        {
            "id": text,
            "image": ds.Image(),
            "messages": ds.List({"role": text, "content": text})
            if hasattr(ds, "List")
            else [{"role": text, "content": text}],
            "slice_id": text,
            "task": text,
            "kind": text,
            "style": text,
            "question": text,
            "options": text,
            "answer": text,
            "trap": ds.Value("bool"),
            "original_answer": text,
            "keywords": ds.Sequence(text),
            "diagnosis": text,
        }
    )


class HFWriter(Writer):
    name = "hf"
    places_images = False

    def __init__(self, root: Path, store_root: Path) -> None:
        require_datasets()
        super().__init__(root, store_root)
        self.staging = root / ".hf-staging"
        self.staging.mkdir()
        self.root_out = root

    def _file(self, split: str):
        handle = self.files.get(split)
        if handle is None:
            handle = (self.staging / f"{split}.jsonl").open("w", encoding="utf-8")
            self.files[split] = handle
        return handle

    def image_for(self, item: Instruction) -> str:
        if item.slice_id != self._last_slice:
            if not (self.store_root / item.image).is_file():
                raise InvalidRecord(f"slice {item.slice_id}: image {item.image} is missing")
            self._last_slice = item.slice_id
        return item.image  # read from the store when the Arrow files are written

    def encode(self, item: Instruction, image: str) -> str:
        messages = item.messages()
        validate_messages(messages, [image], self.store_root, check_files=False)
        record = {
            "id": item.id,
            "image": image,
            "messages": messages,
            "slice_id": item.slice_id,
            "task": item.task,
            "kind": item.kind,
            "style": item.style,
            "question": item.question,
            "options": json.dumps(item.options) if item.options else None,
            "answer": item.answer,
            "trap": item.trap,
            "original_answer": item.original_answer,
            "keywords": item.keywords,
            "diagnosis": item.diagnosis,
        }
        return json.dumps(record, ensure_ascii=False) + "\n"

    def close(self) -> None:
        super().close()
        ds = require_datasets()
        ds.disable_progress_bars()  # the command shows its own progress
        feats = features()
        parts = {}
        cache = self.staging / "cache"
        for split in SPLITS:
            path = self.staging / f"{split}.jsonl"
            parts[split] = ds.Dataset.from_generator(
                _rows,
                gen_kwargs={"path": str(path), "store_root": str(self.store_root)},
                features=feats,
                cache_dir=str(cache),
                split=split,
            )
        ds.DatasetDict(parts).save_to_disk(str(self.root))
        shutil.rmtree(self.staging)


def _rows(path: str, store_root: str) -> Iterator[dict[str, Any]]:
    last: tuple[str, bytes] = ("", b"")
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["image"] != last[0]:
                last = (record["image"], (Path(store_root) / record["image"]).read_bytes())
            record["image"] = {"bytes": last[1], "path": Path(record["image"]).name}
            yield record


def write_card(folder: Path, stats: dict[str, Any]) -> None:
    """The dataset card: Hub YAML metadata (license, task categories, splits), how it was made."""
    counts = stats["by_split"]
    total = sum(counts.values())
    size = "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K"
    if total >= 100_000:
        size = "100K<n<1M" if total < 1_000_000 else "1M<n<10M"
    splits_yaml = "\n".join(
        f"  - name: {split}\n    num_examples: {counts.get(split, 0)}" for split in SPLITS
    )
    files_yaml = "\n".join(f"  - split: {split}\n    path: {split}/*.arrow" for split in SPLITS)
    card = f"""---
license: other
license_name: source-collections
license_link: LICENSE
language:
- en
task_categories:
- visual-question-answering
- image-text-to-text
tags:
- medical
- mri
- brain-tumor
- neuro-oncology
size_categories:
- {size}
pretty_name: NeuroOnco instruction set
dataset_info:
  splits:
{splits_yaml}
configs:
- config_name: default
  data_files:
{files_yaml}
---

# NeuroOnco instruction set

Multimodal instructions about 2D brain MRI slices, generated by `neuroonco instructions` from the
consensus of an annotation run (run `{stats["run_id"]}`, {stats["n_slices"]} slices,
{stats["n_subjects"]} subjects).

## How it was made

Slices were ingested from public collections (patient identifiers removed), measured
deterministically from their masks (size, shape, spread, location, laterality), and annotated by a
panel of VLM agents whose claims a critic checked against the measurements. From each slice's
accepted consensus come closed questions (one per field the consensus holds; options from a
controlled vocabulary; diagnosis distractors from a versioned look-alike table, version
{stats["lookalikes_version"]}; "None of the above" right on {stats["traps"]} trap questions, rate
{stats["trap_rate"]}), in two answer styles (the letter, or `Final: <letter>` with an explanation),
and open tasks (report, location, reasoning) with reference answers and keywords.

Splits are by subject (duplicates stay with their original), stratified by diagnosis, seed
{stats["seed"]}. Each row has `image`, `messages` (user/assistant), and the question's metadata
(`task`, `kind`, `style`, `options`, `answer`, `trap`, `original_answer`, `keywords`).

## Licence

The images derive from the source collections; their licences apply. Check each source's terms
before redistributing.
"""
    (folder / "README.md").write_text(card, encoding="utf-8")
