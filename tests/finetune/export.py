"""A small llamafactory export in the exact layout of INTERFACES.md, with real phantom PNGs.

The instructions branch writes the real export; this helper writes the same layout so the
training tests do not depend on it: OUT/llamafactory/dataset_info.json (neuroonco_train/val/test
sharegpt entries), <split>.jsonl and images/*.png made from our slice phantoms.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from neuroonco.tools.phantom import make_slice_phantom

DIAGNOSES = ("glioma", "meningioma", "metastasis", "no_tumor")
SEQUENCES = ("t1ce", "t2", "flair", "t1")
NAMES = {"no_tumor": "no tumor", "t1ce": "T1-weighted post-contrast"}


def _entry(split: str) -> dict:
    return {
        "file_name": f"{split}.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    }


def record_for(index: int, image: str, two_turns: bool = False) -> dict:
    """One conversation about one phantom slice; the answer follows from how it was made."""
    diagnosis = DIAGNOSES[index % len(DIAGNOSES)]
    sequence = SEQUENCES[(index // len(DIAGNOSES)) % len(SEQUENCES)]
    messages = [
        {"role": "user", "content": "<image>What is the diagnosis?"},
        {"role": "assistant", "content": NAMES.get(diagnosis, diagnosis)},
    ]
    if two_turns:
        messages += [
            {"role": "user", "content": "Which sequence is this?"},
            {"role": "assistant", "content": NAMES.get(sequence, sequence)},
        ]
    return {"messages": messages, "images": [image]}


def write_export(
    root: Path,
    n_train: int = 8,
    n_val: int = 2,
    n_test: int = 2,
    size: int = 56,
    system: bool = False,
) -> Path:
    """Write the export under `root` and return `root` (the --out of `neuroonco instructions`)."""
    folder = root / "llamafactory"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    info = {f"neuroonco_{s}": _entry(s) for s in ("train", "val", "test")}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    index = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        lines = []
        for _ in range(n):
            diagnosis = DIAGNOSES[index % len(DIAGNOSES)]
            sequence = SEQUENCES[(index // len(DIAGNOSES)) % len(SEQUENCES)]
            pixels, _ = make_slice_phantom(
                size,
                seed=index,
                tumour=diagnosis != "no_tumor",
                diagnosis=diagnosis if diagnosis != "no_tumor" else "glioma",
                sequence=sequence,
            )
            name = f"images/{split}_{index:04d}.png"
            Image.fromarray(pixels).save(folder / name)
            record = record_for(index, name, two_turns=index % 2 == 1)
            if system:
                system_message = {"role": "system", "content": "You are a neuroradiologist."}
                record["messages"].insert(0, system_message)
            lines.append(json.dumps(record))
            index += 1
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
