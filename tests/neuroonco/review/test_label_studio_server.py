"""The Label Studio round trip against a real server: export, project, annotation, import.

A real ``label-studio`` (its own venv, see tests/support/label_studio.py) runs on a loopback port.
The queue of a synthetic run is exported with ``neuroonco review --export-label-studio`` in
local-files mode, the project is created and the tasks imported through ``label-studio-sdk``,
a reviewer's annotation (one field edited, the others accepted) is submitted through the API,
the project is exported through the API, and ``neuroonco review --import-label-studio`` records
it: the reviews rows and the gold set must show the edit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils
from PIL import Image
from typer.testing import CliRunner

from neuroonco.cli import app
from neuroonco.review import gold
from tests.neuroonco.review.synthetic import (
    RA,
    RB,
    RUN,
    lesion_measurements,
    make_run,
    margins_dispute,
)
from tests.support.label_studio import LabelStudioServer, require_venv

runner = CliRunner()
DECODE_BRUSH = (
    "import json, sys\n"
    "from label_studio_sdk.converter.brush import decode_rle\n"
    "print(json.dumps(decode_rle(json.load(sys.stdin)).tolist()))\n"
)


def synthetic_run(folder: Path) -> Path:
    """Two slices to review: s1 disputes margins, s2 disputes size; images and masks on disk."""
    m = lesion_measurements(size="small")
    make_run(
        folder / "run.db",
        {
            "s1": margins_dispute(m),
            "s2": {
                "status": "needs_review",
                "measurements": m,
                "votes": {
                    RA: {"lesion_found": True, "size": "small"},
                    RB: {"lesion_found": True, "size": "large"},
                },
                "consensus": {"size": "small"},
            },
        },
    )
    for i, sid in enumerate(("s1", "s2")):
        Image.fromarray(np.full((16, 16), 60 + 40 * i, np.uint8)).save(folder / f"{sid}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:8, 4:8] = 255
        Image.fromarray(mask).save(folder / f"{sid}_mask.png")
    return folder / "run.db"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_label_studio_round_trip_on_a_real_server(tmp_path):
    require_venv()
    with LabelStudioServer(tmp_path) as ls:
        print(f"label-studio ready in {ls.start_seconds:.1f} s")
        work = ls.document_root / "review"  # below the server's document root
        work.mkdir()
        db = synthetic_run(work)
        out = work / "ls"
        exported = runner.invoke(
            app,
            [
                "review",
                "--db",
                str(db),
                "--export-label-studio",
                str(out),
                "--local-files-root",
                str(ls.document_root),
            ],
        )
        assert exported.exit_code == 0, exported.output
        tasks = json.loads((out / "tasks.json").read_text())
        assert sorted(t["data"]["slice_id"] for t in tasks) == ["s1", "s2"]
        assert all(t["data"]["image"].startswith("/data/local-files/?d=review/ls/") for t in tasks)

        # The project and its tasks, through the SDK: the server accepts our config and tasks.
        pushed = ls.sync(
            "push", out / "tasks.json", out / "labeling_config.xml", "--title", "NO run"
        )
        project, task_ids = pushed["project"], pushed["tasks"]
        assert len(task_ids) == 2
        stored = {}
        for tid in task_ids:
            task = ls.api("GET", f"/api/tasks/{tid}").json()
            stored[task["data"]["slice_id"]] = task
        s1 = stored["s1"]
        # The consensus arrives as the preselected prediction, each choice one of the config's.
        parsed = ls.api("GET", f"/api/projects/{project}/").json()["parsed_label_config"]
        (prediction,) = s1["predictions"]
        assert prediction["model_version"] == "neuroonco-consensus"
        preselected = {
            r["from_name"]: r["value"]["choices"][0]
            for r in prediction["result"]
            if r["type"] == "choices"
        }
        assert preselected == {"lesion_found": "yes", "size": "small", "margins": "ill_defined"}
        for name, value in preselected.items():
            assert value in parsed[name]["labels"]
        assert "well_circumscribed" in s1["data"]["votes"]
        # The mask is pre-drawn as a brush region: the SDK's own RLE decoder gives it back.
        (brush,) = [r for r in prediction["result"] if r["type"] == "brushlabels"]
        decoded = ls.venv_python(DECODE_BRUSH, json.dumps(brush["value"]["rle"]))
        alpha = np.array(json.loads(decoded), np.uint8).reshape(16, 16, 4)[..., 3]
        mask = np.asarray(Image.open(work / "s1_mask.png"))
        assert (alpha == np.where(mask > 0, 255, 0)).all()
        # The server itself serves the slice and its overlay to the reviewer's browser.
        for key, name in (("image", "s1.png"), ("mask", "s1_overlay.png")):
            served = ls.api("GET", s1["data"][key])
            assert served.status_code == 200, (key, served.status_code)
            assert served.content == (out / "images" / name).read_bytes()

        # A reviewer keeps lesion_found and size, and changes margins.
        result = [dict(r) for r in prediction["result"]]
        for r in result:
            r.pop("id", None)
            if r["from_name"] == "margins":
                r["value"] = {"choices": ["well_circumscribed"]}
        (work / "result.json").write_text(json.dumps(result))
        ls.sync("annotate", s1["id"], work / "result.json")

        ls.sync("pull", project, work / "export.json")
        export = json.loads((work / "export.json").read_text())
        assert [t["data"]["slice_id"] for t in export] == ["s1"]  # only annotated tasks
        imported = runner.invoke(
            app, ["review", "--db", str(db), "--import-label-studio", str(work / "export.json")]
        )
        assert imported.exit_code == 0, imported.output
        assert "Recorded 3 decisions" in imported.output

    database = sqlite_utils.Database(db)
    rows = list(
        database.query(
            "SELECT slice_id, field, decision, value, reviewer, source, run_id FROM reviews "
            "ORDER BY field"
        )
    )
    who = f"label_studio:{ls.user}"
    assert rows == [
        {
            "slice_id": "s1",
            "field": f,
            "decision": d,
            "value": v,
            "reviewer": who,
            "source": "label_studio",
            "run_id": RUN,
        }
        for f, d, v in (
            ("lesion_found", "accept", "true"),
            ("margins", "edit", '"well_circumscribed"'),
            ("size", "accept", '"small"'),
        )
    ]
    assert gold.gold_values(database) == {
        "s1": {"lesion_found": True, "margins": "well_circumscribed", "size": "small"}
    }
    findings = gold.gold_findings(database, RUN)
    assert set(findings) == {"s1"} and findings["s1"]["margins"] == "well_circumscribed"
    again = runner.invoke(
        app, ["review", "--db", str(db), "--import-label-studio", str(work / "export.json")]
    )
    assert again.exit_code == 0 and "Recorded 0 decisions" in again.output
