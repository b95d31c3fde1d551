"""The review form of ``notebooks/review.ipynb``: one dropdown per field, a save button.

Each dropdown starts on the consensus value; on save, a field left on the consensus is an
``accept``, another vocabulary value an ``edit``, "(reject)" (or "(none)" where the consensus
had a value) a ``reject``, and "(skip)" no decision. The decision logic (:func:`decisions`) is
plain Python, so it is tested without a kernel.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from neuroonco.review import gold
from neuroonco.review.label_studio import _choice_value, _choices
from neuroonco.review.queue import QueueItem
from neuroonco.review.votes import VOTED_FIELDS

SKIP, REJECT, NONE = "(skip)", "(reject)", "(none)"


def decisions(consensus: dict[str, Any], choices: dict[str, str]) -> list[tuple[str, str, Any]]:
    """(field, decision, value) for each field whose choice says something."""
    out = []
    for name, picked in choices.items():
        current = _choice_value(consensus.get(name)) or NONE
        if picked == SKIP or (picked == NONE and current == NONE):
            continue  # nothing said, or nothing to say about a field the consensus left open
        if picked in (REJECT, NONE):
            out.append((name, "reject", None))
        elif picked == current:
            out.append((name, "accept", None))
        else:
            out.append((name, "edit", picked))
    return out


def review_form(
    db: sqlite_utils.Database, item: QueueItem, *, run_id: str, reviewer: str
) -> tuple[Any, dict[str, Any], Any, Any]:
    """(form widget, field -> dropdown, save button, output area) for one queue item."""
    import ipywidgets as w

    dropdowns = {}
    for name in VOTED_FIELDS:
        options = [SKIP, REJECT, NONE, *(value for _, value in _choices(name))]
        current = _choice_value(item.consensus.get(name)) or NONE
        dropdowns[name] = w.Dropdown(options=options, value=current, description=name)
    save = w.Button(description="Save decisions")
    out = w.Output()

    def on_save(_: Any) -> None:
        picked = {n: d.value for n, d in dropdowns.items()}
        written = []
        for name, decision, value in decisions(item.consensus, picked):
            gold.record(
                db,
                item.slice_id,
                name,
                decision,
                value=value,
                reviewer=reviewer,
                run_id=run_id,
                source="notebook",
            )
            written.append(f"{name}: {decision}" + (f" {value}" if value else ""))
        with out:
            print(f"Saved {len(written)} decisions on {item.slice_id}: " + "; ".join(written))

    save.on_click(on_save)
    return w.VBox([*dropdowns.values(), save, out]), dropdowns, save, out
