"""Reading our `llamafactory` export (layout in INTERFACES.md) for training: torch-free.

DATA_DIR may be the export's root (holding `llamafactory/`) or the `llamafactory/` folder itself.
`dataset_info.json` names each split's JSON-lines file in LLaMA-Factory's sharegpt form; image
paths are relative to the folder holding `dataset_info.json`. Records are checked as they are
read: a broken record (bad JSON, a missing image, `<image>` markers that do not match the images)
is a clear error naming its file and line, because training silently on part of the data is worse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroonco.errors import ConfigError

IMAGE_MARK = "<image>"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Record:
    """One conversation: messages in order and the absolute paths of its images."""

    messages: tuple[dict[str, str], ...]
    images: tuple[Path, ...]
    line: int  # 1-based, for messages


def export_root(data_dir: Path) -> Path:
    """The folder holding dataset_info.json."""
    for candidate in (data_dir / "llamafactory", data_dir):
        if (candidate / "dataset_info.json").is_file():
            return candidate
    raise ConfigError(
        f"{data_dir} holds no llamafactory export (no dataset_info.json in it or in "
        f"{data_dir / 'llamafactory'}): make one with "
        "`neuroonco instructions --out DIR --format llamafactory`"
    )


def dataset_entry(root: Path, name: str) -> dict[str, Any]:
    """The dataset_info.json entry `name`, checked to be a sharegpt messages/images entry."""
    try:
        info = json.loads((root / "dataset_info.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{root / 'dataset_info.json'} is not valid JSON: {exc}") from None
    if name not in info:
        raise ConfigError(
            f"{root / 'dataset_info.json'} has no entry {name!r} (it has: {', '.join(info)})"
        )
    entry = info[name]
    if entry.get("formatting", "alpaca") != "sharegpt" or "file_name" not in entry:
        raise ConfigError(f"dataset {name!r} in {root} is not a sharegpt file entry")
    return entry


def _check(record: Any, where: str, root: Path, columns: dict[str, str]) -> Record:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: a record must be a JSON object")
    messages = record.get(columns.get("messages", "messages"))
    images = record.get(columns.get("images", "images")) or []
    if not isinstance(messages, list) or not messages:
        raise ConfigError(f"{where}: no messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ConfigError(f"{where}: each message needs a role among {', '.join(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise ConfigError(f"{where}: message content must be a string")
    if not any(m["role"] == "assistant" for m in messages):
        raise ConfigError(f"{where}: no assistant message to learn from")
    marks = sum(m["content"].count(IMAGE_MARK) for m in messages)
    if marks != len(images):
        raise ConfigError(f"{where}: {marks} {IMAGE_MARK} markers but {len(images)} images")
    paths = []
    for image in images:
        path = (root / image).resolve()
        if not path.is_file():
            raise ConfigError(f"{where}: image {image} not found under {root}")
        paths.append(path)
    return Record(tuple(messages), tuple(paths), int(where.rsplit(":", 1)[-1]))


def read_split(data_dir: Path, dataset: str = "neuroonco_train") -> list[Record]:
    """Every record of one dataset entry of the export, checked."""
    root = export_root(data_dir)
    entry = dataset_entry(root, dataset)
    path = root / entry["file_name"]
    if not path.is_file():
        raise ConfigError(f"{path} (dataset {dataset!r}) does not exist")
    columns = entry.get("columns", {})
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
            records.append(_check(data, where, root, columns))
    if not records:
        raise ConfigError(f"{path} holds no records")
    return records
