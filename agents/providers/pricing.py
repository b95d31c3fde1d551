"""USD prices per million tokens for a handful of known hosted models, and the cost of a call.

Prices are list prices for standard (non-batch, non-cached) usage as published by the vendors
(checked late 2025); they change, so treat costs as estimates. A model that is not listed has an
unknown cost (`None`), except local and offline backends (`ollama:`, `builtin`), which cost 0.
"""

from __future__ import annotations

# model name prefix -> (input USD / 1M tokens, output USD / 1M tokens)
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    # Anthropic
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-3-5-haiku": (0.80, 4.00),
}

FREE_PROVIDERS = frozenset({"ollama", "builtin"})

# Longest prefix first, so "gpt-4o-mini-2024-07-18" matches gpt-4o-mini, not gpt-4o.
_PREFIXES = sorted(PRICES_PER_MILLION, key=len, reverse=True)


def price_per_million(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens for a model name, matching dated snapshots by prefix."""
    for prefix in _PREFIXES:
        if model == prefix or model.startswith(prefix + "-"):
            return PRICES_PER_MILLION[prefix]
    return None


def cost_usd(spec: str, input_tokens: int, output_tokens: int) -> float | None:
    """Cost of a call in USD; None when the model's price is unknown."""
    provider, _, model = spec.partition(":")
    if provider in FREE_PROVIDERS:
        return 0.0
    prices = price_per_million(model)
    if prices is None:
        return None
    return (input_tokens * prices[0] + output_tokens * prices[1]) / 1_000_000


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``SPEC=IN/OUT`` (USD per million input/output tokens) -> (spec, (in, out))."""
    spec, sep, prices = text.rpartition("=")
    first, slash, second = prices.partition("/")
    try:
        if not (sep and slash and spec.strip()):
            raise ValueError
        pair = (float(first), float(second))
    except ValueError:
        raise ValueError(
            f"--price {text!r}: write SPEC=IN/OUT in USD per million tokens, "
            "e.g. openai:my-model=0.15/0.60"
        ) from None
    if min(pair) < 0:
        raise ValueError(f"--price {text!r}: prices cannot be negative")
    return spec.strip(), pair


class Prices:
    """The list prices above, with prices given for this run (``--price``, ``--config``) on top."""

    def __init__(self, given: dict[str, tuple[float, float]] | None = None) -> None:
        self.given = dict(given or {})

    def per_million(self, spec: str) -> tuple[float, float] | None:
        if spec in self.given:
            return self.given[spec]
        provider, _, model = spec.partition(":")
        if provider in FREE_PROVIDERS:
            return (0.0, 0.0)
        return price_per_million(model)

    def cost(self, spec: str, input_tokens: int, output_tokens: int) -> float | None:
        prices = self.per_million(spec)
        if prices is None:
            return None
        return (input_tokens * prices[0] + output_tokens * prices[1]) / 1_000_000


# Rough tokenizer rate for English and JSON, and the answer length of a schema-shaped reply.
CHARS_PER_TOKEN = 4
ESTIMATED_OUTPUT_TOKENS = 300


def image_tokens(png: bytes) -> int:
    """Input tokens of one PNG as OpenAI counts a high-detail image (85 + 170 per 512 px tile,
    after fitting in 2048 px and scaling the short side to 768 px); the most of the three APIs."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return 765  # unknown size: a 1024 px square
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    scale = min(1.0, 2048 / max(width, height, 1))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / max(min(width, height), 1))
    width, height = width * scale, height * scale
    tiles = -(-int(width) // 512) * -(-int(height) // 512)
    return 85 + 170 * max(tiles, 1)


def estimate_tokens(request: object, schema_text: str = "") -> tuple[int, int]:
    """(input, output) tokens a request will take: its texts, the answer schema it carries and
    its images; output is a typical schema-shaped answer, capped by its max_tokens."""
    texts = [getattr(request, "system", ""), getattr(request, "prompt", ""), schema_text]
    images = getattr(request, "images", ())
    text_tokens = sum(len(t or "") for t in texts) // CHARS_PER_TOKEN
    caption_tokens = sum(len(i.caption) for i in images) // CHARS_PER_TOKEN
    input_tokens = text_tokens + caption_tokens + sum(image_tokens(i.png) for i in images)
    max_tokens = getattr(request, "max_tokens", None) or ESTIMATED_OUTPUT_TOKENS
    return input_tokens, min(ESTIMATED_OUTPUT_TOKENS, max_tokens)
