"""Hand-made annotation runs written straight into a store: slices, describer calls, annotations.

Each slice is given as the describers' votes (rater -> field values, None for a failed call);
the rows look like what the graph writes (``agent_calls.target`` = "<i>:<spec>", ``output`` the
SliceFindings JSON), so the review code reads them exactly as it reads a real run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlite_utils

from neuroonco import store

RUN = "run-syn"
# The two describers of a mixed panel, as the graph keys them.
RA, RB = "0:builtin", "1:openai:gpt-4o-mini"


def lesion_measurements(**values: Any) -> dict[str, Any]:
    """Measurements of a mask marking a lesion, with the mask-derived values given."""
    return {"area_fraction": 0.05, **values}


def margins_dispute(measurements: dict[str, Any]) -> dict[str, Any]:
    """A needs_review slice whose two describers agree on size and dispute the margins."""
    return {
        "status": "needs_review",
        "measurements": measurements,
        "votes": {
            RA: {"lesion_found": True, "size": "small", "margins": "ill_defined"},
            RB: {"lesion_found": True, "size": "small", "margins": "well_circumscribed"},
        },
        "consensus": {"size": "small", "margins": "ill_defined"},
    }


def make_run(
    path: Path,
    slices: dict[str, dict[str, Any]],
    *,
    run_id: str = RUN,
    started_at: str = "2026-01-01T00:00:00",
) -> sqlite_utils.Database:
    """``slices``: id -> {"votes": {rater: fields|None}, "measurements": dict|None,
    "status": str, "consensus": dict, "round2": {rater: fields}} (all but votes optional)."""
    db = store.connect(path)
    db["runs"].insert({"id": run_id, "started_at": started_at, "config": "{}"}, replace=True)
    n = 0
    for sid, spec in slices.items():
        measurements = spec.get("measurements")
        db["slices"].insert(
            {
                "id": sid,
                "dataset": "syn",
                "modality": spec.get("modality", "t2"),
                "image_path": spec.get("image_path", f"{sid}.png"),
                "mask_path": spec.get("mask_path", f"{sid}_mask.png" if measurements else None),
                "measurements": json.dumps(measurements) if measurements else None,
            },
            replace=True,
        )
        for rnd, key in ((1, "votes"), (2, "round2")):
            for rater, fields in (spec.get(key) or {}).items():
                n += 1
                output = None
                if fields is not None:
                    output = json.dumps({"modality": spec.get("modality", "t2"), **fields})
                db["agent_calls"].insert(
                    {
                        "id": f"{run_id}-{n:06d}",
                        "run_id": run_id,
                        "slice_id": sid,
                        "role": "describer",
                        "model": rater.split(":", 1)[1],
                        "target": rater,
                        "round": rnd,
                        "output": output,
                        "error": None if fields is not None else "boom",
                        "created_at": f"2026-01-01T00:00:{n:02d}",
                    }
                )
        consensus = {"lesion_found": True, **(spec.get("consensus") or {})}
        db["annotations"].insert(
            {
                "slice_id": sid,
                "run_id": run_id,
                "status": spec.get("status", "accepted"),
                "findings": json.dumps(consensus),
                "agreement": spec.get("agreement", 1.0),
                "rounds": 1,
                "created_at": "2026-01-01T00:01:00",
            },
            replace=True,
        )
    return db
