"""neuroonco.traces: read-only queries over a small hand-built store, overlay and tables."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuroonco import store, trace_views, traces
from neuroonco.agents.prompts import render_prompt
from neuroonco.errors import StoreError

OLD, NEW = "20260101T000000-aaaaaa", "20260102T000000-bbbbbb"
VOTE_A = {"modality": "t1ce", "size": "large", "shape": "round_oval", "rationale": "A says so."}
VOTE_A2 = {"modality": "t1ce", "size": "large", "shape": "irregular", "rationale": "A revised."}
VOTE_B = {"modality": "t1ce", "size": "medium", "shape": "irregular", "rationale": "B says so."}
MEASURED = {"area_fraction": 0.08, "circularity": 0.4, "shape": "irregular", "size": "large"}


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _critic(run: str, n: int, round_: int, vote: dict, verdicts: dict, target: str) -> dict:
    prompt = render_prompt("critic", {"modality": "t1ce", "findings": vote}).prompt
    return _call(
        run, n, "critic", "builtin", round_, {"verdicts": verdicts}, prompt=prompt, target=target
    )


def _call(
    run, n, role, model, round_, output, *, prompt="p", error=None, cached=0, target=None
) -> dict:
    return {
        "id": f"{run}-{n:06d}",
        "run_id": run,
        "slice_id": "s1",
        "role": role,
        "model": model,
        "round": round_,
        "prompt": prompt,
        "response": json.dumps(output) if output is not None else "oops",
        "output": json.dumps(output) if output is not None else None,
        "error": error,
        "attempts": 1 if cached == 0 else 0,
        "latency_ms": 10.0 * n,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.001,
        "cached": cached,
        "attempt_log": json.dumps([{"attempt": 1, "outcome": "ok" if output else "invalid"}]),
        "target": target,
    }


def _annotation(slice_id: str, run: str, status: str, agreement: float | None, **extra) -> dict:
    return {
        "slice_id": slice_id,
        "run_id": run,
        "status": status,
        "agreement": agreement,
        "rounds": 2 if slice_id == "s1" else 1,
        "created_at": "2026-01-01T00:00:01",
        **extra,
    }


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A store: s1 fully traced over two rounds, s2 failed (image gone), s3/s4 need review."""
    path = tmp_path / "data" / "t.db"
    db = store.connect(path)
    image = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16], mask[20:24, 20:24] = 2, 3
    _png(path.parent / "t_images/s1.png", image)
    _png(path.parent / "t_images/s1_mask.png", mask)
    for n, sid in enumerate(("s1", "s2", "s3", "s4")):
        db["slices"].insert(
            {
                "id": sid,
                "dataset": "phantom",
                "modality": "t1ce",
                "plane": "axial",
                "slice_index": n,
                "label": "glioma",
                "subject_id": f"sub-{n}",
                "image_path": f"t_images/{sid}.png",
                "mask_path": "t_images/s1_mask.png" if sid == "s1" else None,
                "measurements": json.dumps(MEASURED) if sid == "s1" else None,
            }
        )
    db["runs"].insert_all(
        [
            {"id": OLD, "started_at": "2026-01-01T00:00:00", "config": json.dumps({"rule": "x"})},
            {"id": NEW, "started_at": "2026-01-02T00:00:00", "config": None},
        ]
    )
    consensus = {"modality": "t1ce", "size": "large", "shape": "irregular", "rationale": "fused"}
    db["annotations"].insert_all(
        [
            _annotation(
                "s1",
                OLD,
                "accepted",
                0.9,
                findings=json.dumps(consensus),
                agreement_by_field=json.dumps({"size": 1.0, "shape": 0.5}),
            ),
            _annotation("s2", OLD, "failed", None, error="cannot read the slice image: gone"),
            _annotation("s3", OLD, "needs_review", 0.6),
            _annotation("s4", OLD, "needs_review", 0.2),
        ]
    )
    keep, down = {"action": "keep", "reason": "ok"}, {"action": "downgrade", "reason": "0.4"}
    calls = [
        _call(OLD, 1, "describer", "builtin", 1, VOTE_A, target="0:builtin"),
        _call(OLD, 2, "describer", "openai:m", 1, VOTE_B, target="1:openai:m"),
        _call(OLD, 3, "diagnostician", "builtin", 1, {"diagnosis": "glioma"}),
        # Critic rows come back in completion order: B's before A's.
        _critic(OLD, 4, 1, VOTE_B, {"size": {**down, "value": "large"}}, "1:openai:m"),
        _critic(OLD, 5, 1, VOTE_A, {"shape": {**down, "value": "irregular"}}, "0:builtin"),
        _call(OLD, 6, "describer", "builtin", 2, VOTE_A2, target="0:builtin"),
        _call(
            OLD,
            7,
            "describer",
            "openai:m",
            2,
            None,
            error="invalid JSON after 3 attempts",
            target="1:openai:m",
        ),
        _critic(OLD, 8, 2, VOTE_A2, {"shape": keep}, "0:builtin"),
        _call(OLD, 9, "arbiter", "builtin", 2, {**consensus, "status": "accepted"}, cached=1),
    ]
    db["agent_calls"].insert_all(calls)
    db.close()
    return path


@pytest.fixture
def db(db_path: Path):
    handle = traces.open_store(db_path)
    yield handle
    handle.close()


def test_open_store_is_read_only_and_never_creates(db, tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("delete from slices")
    with pytest.raises(StoreError, match="make demo"):
        traces.open_store(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        traces.open_store(tmp_path / "junk.db")
    sqlite3.connect(tmp_path / "other.db").execute("create table x (a)").connection.close()
    with pytest.raises(StoreError, match="not a NeuroOnco store"):
        traces.open_store(tmp_path / "other.db")


def test_relative_path_found_from_a_subfolder(db_path: Path, monkeypatch) -> None:
    sub = db_path.parent.parent / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)
    found = traces.open_store(Path("data/t.db"))
    assert traces.base_dir(found) == db_path.parent.resolve()


def test_runs_and_latest_run_skip_an_empty_resume(db) -> None:
    listed = traces.runs(db)
    assert [r["id"] for r in listed] == [NEW, OLD]
    assert listed[1]["annotated"] == 4 and listed[1]["config"] == {"rule": "x"}
    assert traces.latest_run_id(db) == OLD


def test_latest_run_without_runs(tmp_path: Path) -> None:
    store.connect(tmp_path / "e.db").close()
    with pytest.raises(StoreError, match="neuroonco annotate"):
        traces.latest_run_id(traces.open_store(tmp_path / "e.db"))


def test_review_and_failed_lists_and_pick(db) -> None:
    review = traces.slices_needing_review(db, OLD)
    assert [r["id"] for r in review] == ["s4", "s3"]  # lowest agreement first
    failed = traces.slices_by_status(db, OLD, "failed")
    assert [(r["id"], r["error"]) for r in failed] == [("s2", "cannot read the slice image: gone")]
    assert traces.pick_slice(db, OLD) == "s4"
    assert traces.pick_slice(db, OLD, "s1") == "s1"
    with pytest.raises(StoreError, match="annotated no slice"):
        traces.pick_slice(db, NEW)


def test_slice_trace_groups_calls_and_reads_pixels(db) -> None:
    trace = traces.slice_trace(db, "s1", OLD)
    assert trace.status == "accepted" and trace.error is None
    assert trace.measurements == MEASURED and "measurements" not in trace.slice
    assert trace.image.shape == (32, 32) and sorted(np.unique(trace.mask)) == [0, 2, 3]
    assert trace.annotation["findings"]["shape"] == "irregular"
    rounds = trace.rounds
    assert list(rounds) == [1, 2]
    assert list(rounds[1]) == ["describer", "diagnostician", "critic"]
    assert list(rounds[2]) == ["describer", "critic", "arbiter"]
    assert [c.model for c in rounds[1]["describer"]] == ["builtin", "openai:m"]
    failed = rounds[2]["describer"][1]
    assert failed.output is None and "invalid JSON" in failed.error
    assert trace.calls[0].attempt_log == [{"attempt": 1, "outcome": "ok"}]
    assert trace.totals() == {
        "calls": 9,
        "failed": 1,
        "cached": 1,
        "input_tokens": 900,
        "output_tokens": 180,
        "latency_ms": 450.0,
        "cost_usd": 0.009,
    }
    assert traces.slice_trace(db, "s1").run_id == OLD  # the slice's latest annotation


def test_critic_calls_are_linked_to_the_findings_they_checked(db) -> None:
    trace = traces.slice_trace(db, "s1", OLD)
    suffix = {c.id[-1]: c.reviews[-1] for c in trace.calls if c.role == "critic"}
    assert suffix == {"4": "2", "5": "1", "8": "6"}
    rows = traces.critic_verdicts(trace)
    assert [(r["round"], r["field"], r["claimed"], r["action"], r["value"]) for r in rows] == [
        (1, "size", "medium", "downgrade", "large"),
        (1, "shape", "round_oval", "downgrade", "irregular"),
        (2, "shape", "irregular", "keep", None),
    ]
    assert rows[0]["describer"].startswith("openai:m")


def test_output_agreement_and_call_rows(db) -> None:
    trace = traces.slice_trace(db, "s1", OLD)
    describers = traces.output_rows(trace.rounds[2]["describer"])
    shape = next(r for r in describers if r["field"] == "shape")
    assert list(shape.values()) == ["shape", "irregular", None]
    assert "invalid JSON" in list(describers[-1].values())[2]
    critic = traces.output_rows(trace.rounds[1]["critic"])
    assert critic == []  # verdicts only, tabulated by critic_verdicts
    agreement = {r["field"]: (r["consensus"], r["agreement"]) for r in traces.agreement_rows(trace)}
    assert agreement == {
        "modality": ("t1ce", None),
        "size": ("large", 1.0),
        "shape": ("irregular", 0.5),
    }
    calls = traces.call_rows(trace.calls)
    assert len(calls) == 9 and calls[-1]["cached"] is True and calls[-1]["role"] == "arbiter"


def test_failed_slice_without_image_or_calls(db) -> None:
    trace = traces.slice_trace(db, "s2", OLD)
    assert trace.status == "failed" and "gone" in trace.error
    assert trace.image is None and trace.mask is None and trace.calls == []
    assert traces.agreement_rows(trace) == [] and traces.critic_verdicts(trace) == []
    assert trace.totals()["calls"] == 0
    assert traces.slice_trace(db, "s2", NEW).status == "not_annotated"
    with pytest.raises(StoreError, match="no slice"):
        traces.slice_trace(db, "nope", OLD)


def test_run_overview(db) -> None:
    overview = traces.run_overview(db, OLD)
    assert overview["slices"] == 4
    assert overview["by_status"] == {"accepted": 1, "failed": 1, "needs_review": 2}
    assert overview["calls"] == 9 and overview["cached_share"] == round(1 / 9, 3)
    assert overview["cost_usd"] == pytest.approx(0.009)
    per = [(r["role"], r["model"], r["calls"], r["failed"]) for r in overview["by_role_model"]]
    assert per[:2] == [("describer", "builtin", 2, 0), ("describer", "openai:m", 2, 1)]
    assert [r[0] for r in per[2:]] == ["diagnostician", "critic", "arbiter"]
    assert traces.run_overview(db, NEW)["cached_share"] == 0.0


def test_overlay_colours_labels_and_keeps_the_rest() -> None:
    image = np.full((4, 4), 100, np.uint8)
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0], mask[1, 1], mask[2, 2] = 1, 3, 7
    rgb = trace_views.overlay(image, mask, alpha=0.5)
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert rgb[3, 3].tolist() == [100, 100, 100]
    assert rgb[0, 0].tolist() == [165, 70, 70]  # halfway to the necrotic-core red
    assert rgb[1, 1, 2] > rgb[1, 1, 0]  # enhancing is blue
    assert rgb[2, 2].tolist() != rgb[3, 3].tolist()  # an unexpected label still shows
    wide = trace_views.overlay(np.linspace(0, 5000, 16).reshape(4, 4), None)
    assert wide[0, 0].tolist() == [0, 0, 0] and wide[3, 3].tolist() == [255, 255, 255]
    assert trace_views.overlay(np.zeros((2, 2, 3), np.uint8), None).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="does not match"):
        trace_views.overlay(image, np.zeros((3, 3), np.uint8))


def test_html_table_escapes_and_formats() -> None:
    html = trace_views.html_table([{"a": "<b>", "b": {"k": 1}}, {"a": 0.123456, "c": None}])
    assert "<th>a</th><th>b</th><th>c</th>" in html
    assert "&lt;b&gt;" in html and "<b>" not in html.replace("<th>b</th>", "")
    assert "{&quot;k&quot;: 1}" in html and "<td>0.1235</td>" in html
    assert trace_views.html_table([]) == "<p><em>(none)</em></p>"
    assert "<th>c</th>" not in trace_views.html_table([{"a": 1, "c": 2}], ["a"])


def test_flat_measurements_keeps_one_sequence() -> None:
    m = {"size": "large", "intensity": {"t1": {"cv": 0.1}, "t2": {"cv": 0.2}}, "c": [1, 2]}
    names = [r["measurement"] for r in trace_views.flat_measurements(m, "t2")]
    assert names == ["c", "intensity.t2.cv", "size"]
    assert len(trace_views.flat_measurements(m)) == 4
