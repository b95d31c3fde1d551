"""Drawing helpers for trace notebooks: a mask overlay, flattened measurements, HTML tables.

Presentation only (numpy in, RGB arrays or HTML text out); the queries live in
:mod:`neuroonco.traces`. The notebooks here have no pandas, so tables are small escaped HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

MASK_COLOURS: dict[int, tuple[int, int, int]] = {
    1: (230, 40, 40),
    2: (250, 210, 0),
    3: (0, 150, 255),
}
OTHER_COLOUR = (255, 0, 255)


def flat_measurements(measurements: dict[str, Any], modality: str | None = None) -> list[dict]:
    """Measurements as (name, value) rows; nested dicts become dotted names.

    With ``modality``, the per-sequence ``intensity`` block keeps only that sequence's numbers.
    """
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in sorted(value.items()):
                if prefix == "intensity" and modality and key != modality:
                    continue
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            rows.append({"measurement": prefix, "value": value})

    walk("", measurements)
    return rows


def overlay(image: np.ndarray, mask: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 picture of ``image`` with the label ``mask`` blended in colour per label."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    if img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(img, dtype=float)
    rgb = np.repeat(img.astype(np.float32)[..., None], 3, axis=2)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape[:2] != rgb.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {img.shape}")
        for label in np.unique(mask[mask > 0]):
            colour = np.array(MASK_COLOURS.get(int(label), OTHER_COLOUR), dtype=np.float32)
            where = mask == label
            rgb[where] = (1 - alpha) * rgb[where] + alpha * colour
    return np.clip(rgb.round(), 0, 255).astype(np.uint8)


def html_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """A small escaped HTML table (notebooks here have no pandas); JSON for nested values."""
    if not rows:
        return "<p><em>(none)</em></p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    elif isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape(str(value)).replace("\n", "<br>")
