"""The notebooks run top to bottom on a small annotated store, headless, as CI runs them."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from neuroonco import traces
from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import annotate

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
INSPECT = NOTEBOOKS / "inspect_traces.ipynb"


@pytest.fixture(scope="module")
def annotated(ingested_db, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The session's ingested store, copied, one slice's image removed, annotated with builtin."""
    copy = ingested_db.copy_to(tmp_path_factory.mktemp("notebook") / "store")
    # A slice alone in its group (a group's other sequences read its image too) loses its image:
    # its annotation fails, the rest of the run goes on.
    broken = copy.query(
        "select id, image_path from slices s where duplicate_of is null and not exists"
        " (select 1 from slices t where t.group_id = s.group_id and t.id != s.id) limit 1"
    )[0]
    (copy.out_dir / broken["image_path"]).unlink()
    summary = annotate(copy.db_path, AnnotateConfig(), concurrency=4)
    assert summary.by_status.get("failed") == 1
    db = traces.open_store(copy.db_path)
    try:
        picked = traces.pick_slice(db, summary.run_id)
    finally:
        db.close()
    return {"db": copy.db_path, "run": summary.run_id, "failed": broken["id"], "picked": picked}


def run_notebook(path: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """Execute ``path`` in a fresh ``python3`` kernel; returns all its output text."""
    for key in ("NEUROONCO_DB", "NEUROONCO_SLICE", "NEUROONCO_RUN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # headless, whatever the machine's default
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return "\n".join(_text(o) for o in outputs)


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    parts = [data.get(k, "") for k in ("text/markdown", "text/html", "text/plain")]
    return "\n".join([*parts, "<image/png>" if "image/png" in data else ""])


def test_saved_without_outputs_with_a_parameters_cell() -> None:
    nb = nbformat.read(INSPECT, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert "NEUROONCO_DB" in code[0].source and "NEUROONCO_SLICE" in code[0].source
    assert nb.metadata.kernelspec.name == "python3"
    assert "pandas" not in json.dumps(nb)


def test_inspect_traces_default_slice(annotated, tmp_path, monkeypatch) -> None:
    text = run_notebook(INSPECT, tmp_path, monkeypatch, NEUROONCO_DB=str(annotated["db"]))
    assert annotated["run"] in text
    assert f"Slice `{annotated['picked']}`" in text
    for expected in ("agreement", "<image/png>", "describer", "diagnostician", "critic", "arbiter"):
        assert expected in text
    assert "cached" in text and "cost $" in text and "latency_ms" in text
    assert annotated["failed"] in text  # listed among the failed slices


def test_inspect_traces_failed_slice(annotated, tmp_path, monkeypatch) -> None:
    text = run_notebook(
        INSPECT,
        tmp_path,
        monkeypatch,
        NEUROONCO_DB=str(annotated["db"]),
        NEUROONCO_SLICE=annotated["failed"],
        NEUROONCO_RUN=annotated["run"],
    )
    assert f"Slice `{annotated['failed']}`: status **failed**" in text
    assert "Annotation failed" in text and "cannot read the slice image" in text
    assert "Image file missing" in text and "<image/png>" not in text


def test_inspect_traces_names_the_fix_for_a_missing_store(tmp_path, monkeypatch) -> None:
    with pytest.raises(CellExecutionError, match="make demo"):
        run_notebook(INSPECT, tmp_path, monkeypatch, NEUROONCO_DB=str(tmp_path / "none.db"))


def test_traces_of_a_real_run(annotated) -> None:
    db = traces.open_store(annotated["db"])
    try:
        trace = traces.slice_trace(db, annotated["picked"], annotated["run"])
        critics = [c for c in trace.calls if c.role == "critic"]
        assert critics and all(c.reviews for c in critics)  # each linked to its describer
        assert {c.role for c in trace.calls} == {"describer", "diagnostician", "critic", "arbiter"}
        assert traces.agreement_rows(trace) and traces.critic_verdicts(trace)
        overview = traces.run_overview(db, annotated["run"])
        assert overview["slices"] == sum(overview["by_status"].values()) > 1
    finally:
        db.close()
