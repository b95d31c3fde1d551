"""Training config: the paper's defaults, checked options, a LoRA pattern off the vision tower."""

from __future__ import annotations

import re

import pytest

from neuroonco.errors import ConfigError
from neuroonco.finetune.config import TrainConfig


def test_defaults_are_the_papers():
    c = TrainConfig(base_model="Qwen/Qwen3-VL-8B-Instruct")
    assert c.lora_targets == ["q_proj", "v_proj"] and c.learning_rate == 1e-4
    assert (c.schedule, c.warmup_ratio, c.epochs, c.precision) == ("cosine", 0.05, 1.0, "auto")


@pytest.mark.parametrize(
    "name",
    [
        "model.language_model.layers.0.self_attn.q_proj",  # transformers 5 layout
        "model.layers.11.self_attn.v_proj",  # transformers 4 Qwen2-VL layout
        "base_model.model.model.language_model.layers.3.self_attn.q_proj",
    ],
)
def test_pattern_hits_the_language_model(name):
    assert re.fullmatch(TrainConfig(base_model="x").target_pattern(), name)


@pytest.mark.parametrize(
    "name",
    [
        "model.visual.blocks.0.attn.q_proj",
        "visual.blocks.5.mlp.gate_proj",  # Qwen2.5-VL vision MLPs share LLM names
        "model.vision_tower.encoder.layers.0.self_attn.v_proj",
        "model.language_model.layers.0.self_attn.q_proj_extra",
        "model.language_model.layers.0.self_attn.o_proj",
    ],
)
def test_pattern_misses_the_vision_tower_and_other_modules(name):
    config = TrainConfig(base_model="x", lora_targets=["q_proj", "v_proj", "gate_proj"])
    assert not re.fullmatch(config.target_pattern(), name)


def test_vision_can_be_opted_in():
    config = TrainConfig(base_model="x", lora_vision=True)
    assert re.fullmatch(config.target_pattern(), "model.visual.blocks.0.attn.q_proj")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lora_rank": 0}, "--lora-rank"),
        ({"lora_targets": [" "]}, "--lora-targets"),
        ({"lora_targets": ["q_proj;rm"]}, "not a module name"),
        ({"schedule": "step"}, "--schedule"),
        ({"warmup_ratio": 1.0}, "--warmup-ratio"),
        ({"max_length": 4}, "--max-length"),
    ],
)
def test_bad_options_are_clear(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(base_model="x", **kwargs)


def test_round_trips_through_json(tmp_path):
    config = TrainConfig(base_model="tiny", lora_rank=4, max_steps=3)
    config.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == config
