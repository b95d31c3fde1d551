"""Each export loads the way its tool reads it; every record is valid."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from neuroonco.finetune import exports
from neuroonco.finetune.exports import llamafactory_info
from neuroonco.finetune.records import Instruction, InvalidRecord, validate_messages


def test_llamafactory_layout_is_the_agreed_one(instruction_set):
    _, out, stats = instruction_set
    folder = out / "llamafactory"
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    assert info == llamafactory_info()
    assert set(info) == {"neuroonco_train", "neuroonco_val", "neuroonco_test"}
    total = 0
    for name, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", "images": "images"}
        lines = (folder / entry["file_name"]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == stats["by_split"][name.split("_")[1]]
        for line in lines:
            record = json.loads(line)
            assert set(record) == {"messages", "images"}
            roles = [m["role"] for m in record["messages"]]
            assert roles == ["user", "assistant"]
            tokens = sum(m["content"].count("<image>") for m in record["messages"])
            assert tokens == len(record["images"]) == 1
            assert all(
                (folder / p).is_file() and not Path(p).is_absolute() for p in record["images"]
            )
        total += len(lines)
    assert total == stats["n_instructions"] > 100


def test_llava_conversations(instruction_set):
    _, out, stats = instruction_set
    folder = out / "llava"
    n = 0
    for split in ("train", "val", "test"):
        records = json.loads((folder / f"{split}.json").read_text(encoding="utf-8"))
        for r in records:
            assert [c["from"] for c in r["conversations"]] == ["human", "gpt"]
            assert r["conversations"][0]["value"].startswith("<image>\n")
            assert (folder / r["image"]).is_file()
        n += len(records)
    assert n == stats["n_instructions"]


def test_openai_chat_with_data_urls(instruction_set):
    _, out, _ = instruction_set
    line = (out / "openai" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    record = json.loads(line)
    user, assistant = record["messages"]
    assert user["role"] == "user" and assistant["role"] == "assistant"
    url = next(p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url")
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<image>" not in json.dumps(record)


def test_hf_loads_from_disk_with_images_and_card(instruction_set):
    datasets = pytest.importorskip("datasets")
    _, out, stats = instruction_set
    loaded = datasets.load_from_disk(str(out / "hf"))
    assert set(loaded) == {"train", "val", "test"}
    assert isinstance(loaded["train"].features["image"], datasets.Image)
    row = loaded["train"][0]
    assert row["image"].size[0] > 0  # decoded as a PIL image from embedded bytes
    assert row["messages"][0]["role"] == "user"
    assert sum(len(loaded[s]) for s in loaded) == stats["n_instructions"]
    card = (out / "hf" / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] and "visual-question-answering" in meta["task_categories"]
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == stats["by_split"]
    assert "## How it was made" in card


def test_record_validation_rejects_bad_records(tmp_path):
    ok = [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}]
    (tmp_path / "a.png").write_bytes(b"x")
    validate_messages(ok, ["a.png"], tmp_path, check_files=True)
    with pytest.raises(InvalidRecord, match="token"):
        validate_messages(ok, ["a.png", "a.png"], tmp_path, check_files=False)
    with pytest.raises(InvalidRecord, match="alternate"):
        validate_messages([ok[0], ok[0]], ["a.png"], tmp_path, check_files=False)
    with pytest.raises(InvalidRecord, match="resolve"):
        validate_messages(ok, ["b.png"], tmp_path, check_files=True)
    with pytest.raises(InvalidRecord, match="empty"):
        validate_messages(
            [ok[0], {"role": "assistant", "content": " "}], ["a.png"], None, check_files=False
        )


def test_hand_encoded_lines_are_what_json_dumps_writes(instruction_set):
    _, out, _ = instruction_set
    lines = (out / "llamafactory" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:200]:
        assert json.dumps(json.loads(line), ensure_ascii=False) == line


def test_llamafactory_lines_are_checked_as_they_are_written(tmp_path):
    """The fast path still validates each record: one image token, a real assistant turn."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.png").write_bytes(b"x")
    writer = exports.LlamaFactoryWriter(tmp_path / "out", tmp_path / "store")
    good = Instruction.make(
        id="r:s:size:closed",
        slice_id="s",
        run_id="r",
        subject_id="sub",
        diagnosis=None,
        task="size",
        kind="closed",
        style="letter",
        template=0,
        question="Q",
        answer="A",
        response="A",
        image="a.png",
    )
    assert good.user_json == '"<image>Q"' and good.prompt == "Q"
    writer.write_slice([good])
    line = tmp_path / "out" / "llamafactory" / "train.jsonl"
    writer.close()
    record = json.loads(line.read_text(encoding="utf-8"))
    assert record == {
        "messages": [
            {"role": "user", "content": "<image>Q"},
            {"role": "assistant", "content": "A"},
        ],
        "images": ["images/s.png"],
    }
    for bad in (
        good.replace(user_json='"<image><image>Q"'),
        good.replace(user_json='"Q"'),
        good.replace(response=" "),
        good.replace(response="<image>A"),
    ):
        with pytest.raises(InvalidRecord):
            writer.encode(bad, "images/s.png")
        with pytest.raises(InvalidRecord):
            writer.write_slice([bad])
