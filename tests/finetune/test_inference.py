"""Batched greedy generation with the tiny model, with and without its trained adapter."""

from __future__ import annotations

import asyncio

import pytest

from neuroonco.errors import ConfigError
from neuroonco.finetune.inference import AsyncBatcher, Chat, LocalVLM, parse_model_spec
from neuroonco.finetune.train_data import read_split


def test_spec_options_parse_and_bad_ones_are_clear():
    assert parse_model_spec("tiny") == ("tiny", {})
    base, options = parse_model_spec("/m/qwen?adapter=/runs/a&max_new_tokens=32")
    assert base == "/m/qwen" and options == {"adapter": "/runs/a", "max_new_tokens": "32"}
    with pytest.raises(ConfigError, match="unknown option"):
        parse_model_spec("tiny?temperature=1")
    with pytest.raises(ConfigError, match="positive integer"):
        parse_model_spec("tiny?batch_size=0")


def test_batched_greedy_equals_one_by_one(trained, export_dir):
    out, _ = trained
    vlm = LocalVLM.load("tiny", out / "adapter")
    records = read_split(export_dir, "neuroonco_test")
    chats = [Chat([dict(m) for m in r.messages[:1]], list(r.images), 8) for r in records]
    batched = vlm.generate(chats)
    single = [vlm.generate([chat])[0] for chat in chats]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.output_tokens <= 9 and g.input_tokens > 16 for g in batched)
    base = LocalVLM.load("tiny").generate(chats)
    assert [g.text for g in base] != [g.text for g in batched]  # the adapter changed answers


def test_async_batcher_gathers_concurrent_calls(trained, export_dir):
    out, _ = trained
    vlm = LocalVLM.load("tiny", out / "adapter")
    sizes: list[int] = []
    generate = vlm.generate

    def counting(chats):
        sizes.append(len(chats))
        return generate(chats)

    vlm.generate = counting
    records = read_split(export_dir, "neuroonco_test")
    chats = [Chat([dict(m) for m in r.messages[:1]], list(r.images), 4) for r in records]

    async def main():
        batcher = AsyncBatcher(vlm, batch_size=3)
        return await asyncio.gather(*(batcher.generate(c) for c in chats))

    answers = asyncio.run(main())
    assert len(answers) == 4 and sizes == [3, 1]
