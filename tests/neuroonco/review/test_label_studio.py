"""Label Studio files: tasks with the consensus preselected, the config, the export read back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from neuroonco.errors import NeuroOncoError
from neuroonco.review import gold
from neuroonco.review.label_studio import export_queue, import_export, labeling_config
from neuroonco.review.queue import build_queue
from tests.neuroonco.review.synthetic import (
    RB,
    RUN,
    lesion_measurements,
    make_run,
    margins_dispute,
)


def store(tmp_path):
    m = lesion_measurements(size="small")
    db = make_run(
        tmp_path / "ls.db",
        {"s1": margins_dispute(m)},
    )
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "s1.png")
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    Image.fromarray(mask).save(tmp_path / "s1_mask.png")
    return db


def test_labeling_config_has_one_single_choice_per_field_from_the_vocabulary():
    root = ET.fromstring(labeling_config())
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert "margins" in choices and "signal_intensity" in choices
    assert {c.get("alias") for c in choices["margins"]} == {"well_circumscribed", "ill_defined"}
    assert all(c.get("choice") == "single" and c.get("toName") == "image" for c in choices.values())
    assert {i.get("name") for i in root.iter("Image")} == {"image", "mask"}
    # Label Studio's frontend reads "true"/"false" attributes as booleans and then fails to
    # render the whole config: no choice may be spelled so.
    assert not [
        c for c in root.iter("Choice") if {c.get("value"), c.get("alias")} & {"true", "false"}
    ]
    assert {c.get("alias") for c in choices["lesion_found"]} == {"yes", "no"}
    (brush,) = root.iter("BrushLabels")
    assert brush.get("toName") == "image" and [x.get("value") for x in brush] == ["lesion (mask)"]


def test_export_preselects_the_consensus_and_shows_each_vote(tmp_path):
    db = store(tmp_path)
    tasks_path, config = export_queue(db, build_queue(db, RUN), tmp_path / "ls", run_id=RUN)
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 1 and config.exists()
    task = tasks[0]
    assert task["data"]["slice_id"] == "s1"
    assert task["data"]["image"].startswith("data:image/png;base64,")
    assert f"{RB}:" in task["data"]["votes"] and "well_circumscribed" in task["data"]["votes"]
    result = task["predictions"][0]["result"]
    pre = {r["from_name"]: r["value"]["choices"] for r in result if r["type"] == "choices"}
    assert pre == {"lesion_found": ["yes"], "size": ["small"], "margins": ["ill_defined"]}
    (brush,) = [r for r in result if r["type"] == "brushlabels"]  # the mask, pre-drawn
    assert brush["from_name"] == "lesion_mask" and brush["readonly"] is True
    assert (brush["original_width"], brush["original_height"]) == (16, 16)
    assert brush["value"]["format"] == "rle" and brush["value"]["brushlabels"] == ["lesion (mask)"]
    overlay = Image.open(tmp_path / "ls" / "images" / "s1_overlay.png").convert("RGB")
    assert overlay.getpixel((5, 5))[0] > overlay.getpixel((5, 5))[1]  # mask tinted red
    assert overlay.getpixel((12, 12)) == (90, 90, 90)
    served = export_queue(db, build_queue(db, RUN), tmp_path / "ls2", url_prefix="http://h/img")
    assert json.loads(served[0].read_text())[0]["data"]["image"] == "http://h/img/s1.png"


def _export(tmp_path, result, ann_id=7, cancelled=False):
    path = tmp_path / "export.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": 1,
                    "data": {"slice_id": "s1", "run_id": RUN},
                    "annotations": [
                        {
                            "id": ann_id,
                            "completed_by": {"email": "ana@example.org"},
                            "was_cancelled": cancelled,
                            "created_at": "2026-01-02T00:00:00Z",
                            "updated_at": "2026-01-02T00:00:00Z",
                            "result": [
                                {
                                    "from_name": k,
                                    "to_name": "image",
                                    "type": "choices",
                                    "value": {"choices": [v]},
                                }
                                for k, v in result.items()
                            ],
                        }
                    ],
                }
            ]
        )
    )
    return path


def test_import_turns_choices_into_accept_edit_reject_once(tmp_path):
    db = store(tmp_path)
    # size kept (accept), margins changed (edit), lesion_found cleared (reject).
    path = _export(tmp_path, {"size": "small", "margins": "well_circumscribed"})
    rows = import_export(db, path)
    decisions = {r["field"]: (r["decision"], r["source"]) for r in rows}
    assert decisions == {
        "size": ("accept", "label_studio"),
        "margins": ("edit", "label_studio"),
        "lesion_found": ("reject", "label_studio"),
    }
    assert rows[0]["reviewer"] == "label_studio:ana@example.org"
    assert gold.gold_values(db)["s1"] == {
        "size": "small",
        "margins": "well_circumscribed",
        "lesion_found": None,
    }
    assert import_export(db, path) == []  # the same annotation again: nothing new


def test_import_refuses_bad_files_and_skips_cancelled(tmp_path):
    db = store(tmp_path)
    assert import_export(db, _export(tmp_path, {"size": "small"}, cancelled=True)) == []
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NeuroOncoError, match="cannot read the Label Studio export"):
        import_export(db, bad)
    with pytest.raises(NeuroOncoError, match="small"):
        import_export(db, _export(tmp_path, {"size": "gigantic"}, ann_id=8))
    assert db["reviews"].count == 0  # a bad value refuses the file: nothing half-imported


def test_export_in_local_files_mode_names_paths_below_the_document_root(tmp_path):
    db = store(tmp_path)
    root = tmp_path.parent
    tasks_path, _ = export_queue(
        db, build_queue(db, RUN), tmp_path / "ls3", local_files_root=root, run_id=RUN
    )
    data = json.loads(tasks_path.read_text())[0]["data"]
    below = f"{tmp_path.name}/ls3/images"
    assert data["image"] == f"/data/local-files/?d={below}/s1.png"
    assert data["mask"] == f"/data/local-files/?d={below}/s1_overlay.png"
    assert (root / below / "s1.png").exists()
    with pytest.raises(NeuroOncoError, match="must be a folder above"):
        export_queue(db, build_queue(db, RUN), tmp_path / "ls4", local_files_root=tmp_path / "x")
    with pytest.raises(NeuroOncoError, match="not both"):
        export_queue(
            db, build_queue(db, RUN), tmp_path / "ls5", url_prefix="http://h", local_files_root=root
        )
