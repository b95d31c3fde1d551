"""The official v1.0 files load as they are; question ids and traps follow DESIGN.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroonco.benchmark.files import load_bench
from neuroonco.errors import ConfigError
from tests.benchmark.conftest import OFFICIAL_CLOSED, OFFICIAL_OPEN


def test_official_closed_file_loads_as_it_is() -> None:
    bench = load_bench(OFFICIAL_CLOSED)
    assert bench.kind == "closed"
    assert len({q.record_id for q in bench.closed}) == 1000
    assert len(bench.closed) == 3190
    traps = [q for q in bench.closed if q.trap]
    assert len(traps) == 606
    assert all(q.answer == q.refusal_letter and q.original_answer for q in traps)
    assert bench.closed[0].question_id == "1_q1" and bench.closed[1].question_id == "1_q2"
    two_option = [q for q in bench.closed if len(q.options) == 2]
    assert len(two_option) == 116 and all(q.refusal_letter is None for q in two_option)


def test_official_open_file_loads_as_it_is() -> None:
    bench = load_bench(OFFICIAL_OPEN)
    assert bench.kind == "open"
    assert len({q.record_id for q in bench.open}) == 243
    assert len(bench.open) == 1215
    assert bench.open[0].question_id == "3_q1"  # its own question_id
    assert sum(len(q.eval_keywords) for q in bench.open) == 3148


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("{}", "not a benchmark file"),
        ('[{"id": 1, "image_path": "x"}]', "neither vqa_pairs"),
        ('[{"id": 1, "image_path": "x", "vqa_pairs": [{"question": "q"}]}]', "malformed"),
        (
            '[{"id": 1, "image_path": "x", "vqa_pairs": [{"question_type": "t", "question": "q",'
            ' "options": {"A": "a"}, "answer": "B"}]}]',
            "not one of its options",
        ),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_bench(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_bench(tmp_path / "nope.json")


def test_duplicate_question_ids_are_refused(tmp_path: Path) -> None:
    record = json.loads(OFFICIAL_OPEN.read_text())[0]
    (tmp_path / "dup.json").write_text(json.dumps([record, record]))
    with pytest.raises(ConfigError, match="appears twice"):
        load_bench(tmp_path / "dup.json")
