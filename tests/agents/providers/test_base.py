"""The request/result types, cache keys, options and prices."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from pydantic import BaseModel

from neuroonco.agents.providers.base import (
    AttemptRecord,
    ImagePart,
    ModelResult,
    ProviderOptions,
    build_result,
    redact,
)
from neuroonco.agents.providers.pricing import cost_usd, price_per_million
from tests.agents.providers.helpers import PNG_A, PNG_B, Tiny, tiny_request


class Other(BaseModel):
    label: str


def test_image_part_encodes_once_and_hides_bytes_from_repr():
    image = ImagePart(PNG_A, "axial")
    assert image.base64 == base64.b64encode(PNG_A).decode()
    assert image.base64 is image.base64  # cached, not recomputed
    assert image.data_url == "data:image/png;base64," + image.base64
    assert image.sha256 == hashlib.sha256(PNG_A).hexdigest()
    assert "PNG" not in repr(image) and "axial" in repr(image)
    assert image == ImagePart(PNG_A, "axial")


def test_cache_key_is_stable_and_sensitive_to_everything_that_matters():
    base = tiny_request(images=(ImagePart(PNG_A, "a"),))
    key = base.cache_key("openai:gpt-4o-mini")
    assert key == tiny_request(images=(ImagePart(PNG_A, "a"),)).cache_key("openai:gpt-4o-mini")
    assert len(key) == 64
    variants = [
        base.cache_key("openai:gpt-4o"),
        replace(base, system="other").cache_key("openai:gpt-4o-mini"),
        replace(base, prompt="other").cache_key("openai:gpt-4o-mini"),
        replace(base, images=(ImagePart(PNG_B, "a"),)).cache_key("openai:gpt-4o-mini"),
        replace(base, response_model=Other).cache_key("openai:gpt-4o-mini"),
        replace(base, temperature=0.7).cache_key("openai:gpt-4o-mini"),
        replace(base, max_tokens=10).cache_key("openai:gpt-4o-mini"),
        replace(base, grounding={"area_fraction": 0.1}).cache_key("openai:gpt-4o-mini"),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_options_are_validated():
    assert ProviderOptions().max_retries == 4
    for bad in ({"timeout_s": 0}, {"max_retries": -1}, {"max_concurrency": 0}):
        with pytest.raises(ValueError):
            ProviderOptions(**bad)


def test_result_sums_tokens_over_all_attempts_and_prices_them():
    attempts = [
        AttemptRecord(1, "invalid_output", "bad", "{}", 1000, 100, 5.0),
        AttemptRecord(2, "rate_limited", "429", None, 0, 0, 1.0, 0.5),
        AttemptRecord(3, "ok", None, "{}", 2000, 200, 5.0),
    ]
    output = Tiny(label="glioma", score=1)
    result = build_result(
        "openai:gpt-4o-mini", attempts, output=output, response="{}", error=None, started=0.0
    )
    assert isinstance(result, ModelResult) and result.ok
    assert (result.input_tokens, result.output_tokens) == (3000, 300)
    assert result.cost_usd == pytest.approx((3000 * 0.15 + 300 * 0.60) / 1e6)


def test_redact():
    assert redact("key sk-1 and sk-1", ("sk-1",)) == "key *** and ***"
    assert redact(None, ("sk-1",)) is None
    assert redact("nothing", ()) == "nothing"


def test_prices():
    assert price_per_million("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_per_million("gpt-4o-2024-08-06") == (2.50, 10.00)
    assert price_per_million("claude-sonnet-4-5-20250929") == (3.00, 15.00)
    assert cost_usd("anthropic:claude-haiku-4-5", 1_000_000, 1_000_000) == pytest.approx(6.0)
    assert cost_usd("openai:gpt-4.1-mini", 1_000_000, 0) == pytest.approx(0.40)
    assert cost_usd("openai:Qwen/Qwen2.5-VL-7B-Instruct", 10, 10) is None
    assert cost_usd("openai:gpt-4ox", 10, 10) is None
    assert cost_usd("ollama:qwen2.5vl:7b", 10**6, 10**6) == 0.0
    assert cost_usd("builtin", 0, 0) == 0.0
