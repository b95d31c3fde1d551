"""notebooks/review.ipynb runs headless on a hand-made run and saves a scripted decision."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import sqlite_utils
from PIL import Image

from neuroonco.review.notebook import decisions
from tests.neuroonco.review.synthetic import lesion_measurements, make_run
from tests.notebooks.test_notebooks import run_notebook

REVIEW = Path(__file__).resolve().parents[2] / "notebooks" / "review.ipynb"


def test_saved_clean_with_a_parameters_cell() -> None:
    nb = nbformat.read(REVIEW, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


def test_decisions_from_the_form_choices() -> None:
    consensus = {"size": "small", "margins": "ill_defined", "texture": None}
    picked = {
        "size": "small",
        "margins": "well_circumscribed",
        "texture": "(none)",
        "shape": "(skip)",
        "lesion_found": "(reject)",
    }
    assert decisions(consensus, picked) == [
        ("size", "accept", None),
        ("margins", "edit", "well_circumscribed"),
        ("lesion_found", "reject", None),
    ]


def test_review_notebook_with_a_scripted_decision(tmp_path, monkeypatch) -> None:
    m = lesion_measurements(size="small")
    make_run(
        tmp_path / "nb.db",
        {
            "s1": {
                "status": "needs_review",
                "measurements": m,
                "votes": {
                    "0:builtin": {"lesion_found": True, "size": "small", "margins": "ill_defined"},
                    "1:builtin": {
                        "lesion_found": True,
                        "size": "large",
                        "margins": "well_circumscribed",
                    },
                },
                "consensus": {"size": "small", "margins": "ill_defined"},
            }
        },
    )
    Image.fromarray(np.full((16, 16), 80, np.uint8)).save(tmp_path / "s1.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[3:9, 3:9] = 255
    Image.fromarray(mask).save(tmp_path / "s1_mask.png")
    script = {"size": "small", "margins": "well_circumscribed"}
    text = run_notebook(
        REVIEW,
        tmp_path,
        monkeypatch,
        NEUROONCO_DB=str(tmp_path / "nb.db"),
        NEUROONCO_REVIEWER="ci",
        NEUROONCO_REVIEW_SCRIPT=json.dumps(script),
    )
    assert "**1** slices in the review queue" in text and "<image/png>" in text
    assert 'review s1 margins edit "well_circumscribed"' in text
    rows = list(
        sqlite_utils.Database(tmp_path / "nb.db").query(
            "SELECT field, decision, reviewer, source FROM reviews ORDER BY id"
        )
    )
    # Every field left on a consensus value is accepted (lesion_found too); margins edited.
    assert {(r["field"], r["decision"]) for r in rows} == {
        ("lesion_found", "accept"),
        ("size", "accept"),
        ("margins", "edit"),
    }
    assert {(r["reviewer"], r["source"]) for r in rows} == {("ci", "notebook")}
