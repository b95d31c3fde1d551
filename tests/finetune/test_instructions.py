"""The whole instruction set from a real annotated store: rows, stats, atomicity, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlite_utils

from neuroonco.errors import ConfigError
from neuroonco.finetune import exports
from neuroonco.finetune.annotated import NothingToExport
from neuroonco.finetune.instructions import InstructionOptions, build_instructions
from neuroonco.tools.synthetic_annotations import write_synthetic_store


def test_rows_stats_and_summary(instruction_set):
    db, out, stats = instruction_set
    rows = list(sqlite_utils.Database(db).query("select * from instructions"))
    assert len(rows) == stats["n_instructions"]
    assert sum(r["trap"] for r in rows) == stats["traps"] > 0
    traps = [r for r in rows if r["trap"]]
    assert all(
        r["original_answer"] and json.loads(r["options"])[r["answer"]] == "None of the above"
        for r in traps
    )
    assert {r["style"] for r in rows} == {"letter", "cot", "open"}
    assert all(json.loads(r["keywords"]) for r in rows if r["kind"] == "open")
    # Rows carry NULL as "" on their way in: the table holds NULL, never "".
    for column in ("options", "original_answer", "keywords"):
        assert all(r[column] != "" for r in rows)
    assert all(r["original_answer"] is None for r in rows if not r["trap"])
    assert all(r["options"] is None and r["keywords"] for r in rows if r["kind"] == "open")
    assert all(r["keywords"] is None for r in rows if r["kind"] == "closed")
    # No subject crosses splits, in the rows themselves.
    conn = sqlite_utils.Database(db)
    crossing = conn.execute(
        "select s.subject_id from instructions i join slices s on s.id = i.slice_id"
        " group by s.subject_id having count(distinct i.split) > 1"
    ).fetchall()
    assert crossing == []
    saved = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert saved == stats
    assert set(stats["fill_rate"]) >= {"diagnosis", "modality", "size", "edema"}
    assert 0 < stats["air"] <= 1 and stats["by_split"]["test"] > 0
    assert sum(stats["by_task"].values()) == stats["n_instructions"]
    assert all(v["traps"] <= v["closed"] for v in stats["traps_by_task"].values())
    summary = (out / "summary.md").read_text(encoding="utf-8")
    for heading in ("by task", "by kind", "by diagnosis", "by split", "Fill rate", "Traps by task"):
        assert heading in summary


def test_existing_output_is_refused_then_replaced_with_force(store_copy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        build_instructions(InstructionOptions(db=store_copy, out=out))
    assert (out / "keep.txt").exists()
    build_instructions(InstructionOptions(db=store_copy, out=out, force=True))
    assert not (out / "keep.txt").exists() and (out / "llamafactory" / "train.jsonl").exists()


def test_a_failing_export_leaves_nothing_half_written(store_copy, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = sqlite_utils.Database(store_copy)["instructions"].count
    calls = {"n": 0}
    original = exports.LlamaFactoryWriter.write_slice

    def dying(self, items):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # as when a person presses Ctrl-C mid-export
        return original(self, items)

    monkeypatch.setattr(exports.LlamaFactoryWriter, "write_slice", dying)
    with pytest.raises(KeyboardInterrupt):
        build_instructions(InstructionOptions(db=store_copy, out=out))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert sqlite_utils.Database(store_copy)["instructions"].count == before


def test_needs_review_only_with_include(store_copy, tmp_path):
    conn = sqlite_utils.Database(store_copy)
    conn.execute("update annotations set status = 'needs_review'")
    conn.conn.commit()
    with pytest.raises(NothingToExport, match="--include needs_review") as err:
        build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "a"))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "a").exists()
    stats = build_instructions(
        InstructionOptions(db=store_copy, out=tmp_path / "b", include=["needs_review"])
    )
    assert stats["n_instructions"] > 0 and stats["statuses"] == ["accepted", "needs_review"]


def test_duplicates_make_no_instructions(tmp_path):
    db = tmp_path / "s.db"
    write_synthetic_store(db, 400, seed=1, duplicate_rate=0.2)
    build_instructions(InstructionOptions(db=db, out=tmp_path / "out"))
    conn = sqlite_utils.Database(db)
    dups = conn.execute(
        "select count(*) from instructions i join slices s on s.id = i.slice_id"
        " where s.duplicate_of is not null"
    ).fetchone()[0]
    assert conn.execute("select count(*) from slices where duplicate_of is not null").fetchone()[0]
    assert dups == 0


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, store_copy):
    from neuroonco import store

    empty = tmp_path / "empty.db"
    store.connect(empty).close()
    with pytest.raises(NothingToExport, match="neuroonco annotate"):
        build_instructions(InstructionOptions(db=empty, out=tmp_path / "o1"))
    with pytest.raises(NothingToExport, match="no run 'nope'"):
        build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "o2", run="nope"))
    with pytest.raises(NothingToExport, match="no store"):
        build_instructions(InstructionOptions(db=tmp_path / "none.db", out=tmp_path / "o3"))
    with pytest.raises(ConfigError, match="llamafactory"):
        build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "o4", formats=["x"]))
    assert not (tmp_path / "none.db").exists()
    assert not any(p.name.startswith(("o", ".o")) for p in tmp_path.iterdir())


def test_hf_without_datasets_names_the_extra(store_copy, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ConfigError, match=r"pip install 'neuroonco\[finetune\]'"):
        build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "o", formats=["hf"]))
    assert not (tmp_path / "o").exists()


def test_keep_source_splits_uses_split_hints(store_copy, tmp_path):
    build_instructions(
        InstructionOptions(db=store_copy, out=tmp_path / "o", keep_source_splits=True)
    )
    conn = sqlite_utils.Database(store_copy)
    wrong = conn.execute(
        "select count(*) from instructions i join slices s on s.id = i.slice_id"
        " where s.split_hint is not null and s.split_hint != i.split"
        " and not exists (select 1 from slices t where t.subject_id = s.subject_id"
        "                 and t.split_hint = 'test')"
    ).fetchone()[0]
    hinted = conn.execute(
        "select count(*) from instructions i join slices s on s.id = i.slice_id"
        " where s.split_hint = 'test'"
    ).fetchone()[0]
    assert hinted > 0 and wrong == 0
    assert Path(tmp_path / "o" / "stats.json").exists()


def test_a_new_export_replaces_its_own_rows_and_keeps_other_configurations(store_copy, tmp_path):
    conn = sqlite_utils.Database(store_copy)
    first = build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "a"))
    assert conn["instructions"].count == first["n_instructions"]
    # Another configuration's row, which a new export of this one must leave alone.
    conn["instructions"].insert({"id": "elsewhere:1", "slice_id": "x", "run_id": "elsewhere"})
    again = build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "b", seed=3))
    assert conn["instructions"].count == again["n_instructions"] + 1
    assert (
        conn.execute("select count(*) from instructions where run_id = 'elsewhere'").fetchone()[0]
        == 1
    )
    conn["instructions"].delete("elsewhere:1")
    build_instructions(InstructionOptions(db=store_copy, out=tmp_path / "c"))
    assert conn["instructions"].count == first["n_instructions"]  # the table held only ours


def test_a_slice_image_missing_from_the_store_fails_the_export_and_names_it(store_copy, tmp_path):
    """Images are linked on a background thread: its failure still fails the export, with the
    slice named, and nothing is written (no output, the store's rows as they were)."""
    conn = sqlite_utils.Database(store_copy)
    before = conn["instructions"].count
    slice_id, image = conn.execute(
        "select s.id, s.image_path from slices s join annotations a on a.slice_id = s.id"
        " where a.status = 'accepted' and s.duplicate_of is null order by s.id desc limit 1"
    ).fetchone()
    (store_copy.parent / image).unlink()
    out = tmp_path / "out"
    with pytest.raises(exports.InvalidRecord, match=f"slice {slice_id}: image .* missing"):
        build_instructions(InstructionOptions(db=store_copy, out=out, formats=["llamafactory"]))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    assert conn["instructions"].count == before
