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
