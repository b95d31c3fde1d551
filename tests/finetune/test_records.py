"""Instruction records: the row is the first fields, made and changed by name, pickled whole."""

from __future__ import annotations

import json
import pickle

import pytest

from neuroonco.finetune.records import (
    IMAGE_TOKEN,
    NULLABLE_AS_EMPTY,
    ROW_COLUMNS,
    ROW_OF,
    Instruction,
    keywords_json,
)


def _closed(**changes) -> Instruction:
    fields = dict(
        id="r:s:size:closed",
        slice_id="s",
        run_id="r",
        subject_id="sub",
        diagnosis="glioma",
        task="size",
        kind="closed",
        style="cot",
        template=2,
        question="How big is it?",
        prompt="How big is it?\nOptions:\nA. Small\nB. None of the above\nAnswer.",
        answer="B",
        response="Final: B\nSmall is not among the options.",
        image="images/s.png",
        options={"A": "Small", "B": "None of the above"},
        trap=True,
        original_answer="Large",
        split="test",
    )
    fields.update(changes)
    return Instruction.make(**fields)


def test_the_row_is_the_store_columns_in_order_with_null_as_empty() -> None:
    ins = _closed()
    row = dict(zip(ROW_COLUMNS, ins.row(), strict=True))
    assert ins.row() == ROW_OF(ins) == tuple(ins[: len(ROW_COLUMNS)])
    assert row["options"] == json.dumps(ins.options, ensure_ascii=False)
    assert (row["trap"], row["original_answer"], row["paraphrased"]) == (1, "Large", 0)
    assert row["keywords"] == "" and "keywords" in NULLABLE_AS_EMPTY  # NULL in the table
    opened = _closed(kind="open", options=None, trap=False, original_answer=None, keywords=["x"])
    open_row = dict(zip(ROW_COLUMNS, opened.row(), strict=True))
    assert (open_row["options"], open_row["original_answer"]) == ("", "")
    assert open_row["keywords"] == '["x"]' and opened.keywords == ["x"]


def test_fields_read_by_name_as_before() -> None:
    ins = _closed()
    assert ins.trap is True and ins.original_answer == "Large" and ins.paraphrased is False
    assert ins.prompt.startswith("How big is it?\nOptions:")
    assert ins.user_content == IMAGE_TOKEN + ins.prompt
    assert json.loads(ins.user_json) == ins.user_content
    assert ins.messages()[1] == {"role": "assistant", "content": ins.response}
    assert _closed(trap=False, original_answer=None).original_answer is None
    assert "task='size'" in repr(ins)


def test_replace_returns_a_changed_copy_and_keeps_the_encodings_in_step() -> None:
    ins = _closed(kind="open", options=None, trap=False, original_answer=None, keywords=["a"])
    done = ins.replace(answer="new", response="new", paraphrased=True, keywords=["b", "c"])
    assert (ins.answer, ins.paraphrased) != (done.answer, done.paraphrased)
    assert done.paraphrased and done.row()[ROW_COLUMNS.index("paraphrased")] == 1
    assert done.row()[ROW_COLUMNS.index("keywords")] == '["b", "c"]'
    assert ins.replace(prompt="other").prompt == "other"
    with pytest.raises(TypeError, match="no field"):
        ins.replace(colour="red")


def test_an_instruction_pickles_whole() -> None:
    ins = _closed()
    back = pickle.loads(pickle.dumps(ins))
    assert type(back) is Instruction and back == ins and back.options == ins.options


@pytest.mark.parametrize(
    "keywords", [["round", "ill-defined"], ["é", '"quoted"', "日本"], [], [1, "a"], [None]]
)
def test_keywords_json_is_what_json_dumps_writes(keywords) -> None:
    assert keywords_json(keywords) == json.dumps(keywords)
