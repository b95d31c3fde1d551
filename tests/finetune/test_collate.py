"""Chat-templated inputs through the processor: loss on assistant turns only, image tokens whole."""

from __future__ import annotations

import pytest
import torch

from neuroonco.finetune.collate import IGNORE, SKIP_TOO_LONG, Skip, collate, encode
from neuroonco.finetune.tiny import build_processor
from neuroonco.finetune.train_data import read_split
from tests.finetune.export import write_export


@pytest.fixture(scope="module")
def processor():
    return build_processor()


def _answers(processor, encoded) -> str:
    ids = encoded.features["input_ids"]
    labels = encoded.features["labels"]
    kept = ids[labels != IGNORE].tolist()
    return processor.tokenizer.decode(kept)


def test_labels_cover_exactly_the_assistant_turns(processor, export_dir):
    records = read_split(export_dir)
    one_turn, two_turns = records[0], records[1]
    first = encode(one_turn, processor, 2048)
    assert _answers(processor, first) == "glioma<|im_end|>\n"
    second = encode(two_turns, processor, 2048)
    # Both answers (and their end-of-turn marks), nothing of the questions or role headers.
    assert (
        _answers(processor, second) == "meningioma<|im_end|>\nT1-weighted post-contrast<|im_end|>\n"
    )


def test_image_tokens_are_the_processors_and_never_learnt(processor, export_dir):
    record = read_split(export_dir)[0]
    encoded = encode(record, processor, 2048)
    ids = encoded.features["input_ids"]
    image_id = processor.image_token_id
    grid = encoded.features["image_grid_thw"]
    merge = processor.image_processor.merge_size
    assert int((ids == image_id).sum()) == int(grid.prod()) // merge**2
    assert bool((encoded.features["labels"][ids == image_id] == IGNORE).all())


def test_system_messages_are_kept_and_not_learnt(processor, tmp_path):
    root = write_export(tmp_path, n_train=2, n_val=0, n_test=0, system=True)
    encoded = encode(read_split(root)[0], processor, 2048)
    text = processor.tokenizer.decode(encoded.features["input_ids"])
    assert "You are a neuroradiologist." in text and "helpful assistant" not in text
    assert _answers(processor, encoded) == "glioma<|im_end|>\n"


def test_a_record_too_long_is_skipped_not_truncated(processor, export_dir):
    record = read_split(export_dir)[0]
    length = encode(record, processor, 2048).length
    assert encode(record, processor, length).length == length
    with pytest.raises(Skip) as caught:
        encode(record, processor, length - 1)
    assert caught.value.reason == SKIP_TOO_LONG


def test_collate_pads_right_and_concatenates_images(processor, export_dir):
    records = read_split(export_dir)[:2]
    items = [encode(r, processor, 2048).features for r in records]
    batch = collate(items, processor.tokenizer.pad_token_id)
    longest = max(len(i["input_ids"]) for i in items)
    assert batch["input_ids"].shape == (2, longest) == batch["labels"].shape
    short = min(range(2), key=lambda k: len(items[k]["input_ids"]))
    assert batch["attention_mask"][short, -1] == 0 and batch["labels"][short, -1] == IGNORE
    assert batch["pixel_values"].shape[0] == sum(i["pixel_values"].shape[0] for i in items)
    assert torch.equal(batch["image_grid_thw"], torch.cat([i["image_grid_thw"] for i in items]))
