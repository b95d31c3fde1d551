"""Records to model inputs through the model's own processor, with the loss on assistant turns.

The chat template renders the conversation and the processor expands each image placeholder into
as many image tokens as the image needs, so the token layout is always the model's (Qwen2-VL,
Qwen2.5-VL, Qwen3-VL...). Which tokens the loss sees is found from the template itself: each
assistant turn is the text between the conversation rendered up to it (with the generation
prompt) and rendered through it, so its closing `<|im_end|>` is learnt and the role header is
not. That character mask is carried to the processor's tokens by tokenising the rendered text
with offsets and aligning it with the processor's ids, where each image placeholder has become a
run of image tokens. A record longer than `max_length` is skipped (never truncated: cutting
image tokens breaks the vision input, cutting the answer teaches a wrong stop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuroonco.finetune.train_data import IMAGE_MARK, Record

IGNORE = -100
SKIP_TOO_LONG = "too_long"
SKIP_NO_ANSWER = "no_answer_tokens"


@dataclass
class Encoded:
    """One record as tensors (un-batched) and the number of tokens the loss sees."""

    features: dict[str, Any]
    length: int
    answer_tokens: int


class Skip(Exception):
    """A record that cannot be trained on as it is; `reason` is counted in the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def chat_messages(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> list[dict]:
    """sharegpt messages to content-part messages: each `<image>` becomes an image part."""
    out = []
    for message in messages:
        parts: list[dict[str, str]] = []
        for i, piece in enumerate(message["content"].split(IMAGE_MARK)):
            if i:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        out.append({"role": message["role"], "content": parts})
    return out


def load_images(record: Record) -> list[Any]:
    from PIL import Image

    images = []
    for path in record.images:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def render(processor: Any, messages: list[dict], generation_prompt: bool = False) -> str:
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_spans(processor: Any, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    text = render(processor, messages)
    spans = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(processor, messages[:i], generation_prompt=True) if i else ""
        through = render(processor, messages[: i + 1])
        if text.startswith(through) and through.startswith(before) and len(before) >= cursor:
            spans.append((len(before), len(through)))
            cursor = len(through)
            continue
        # A template that is not prefix-stable (it rewrites earlier turns): fall back to the
        # answer's own text, found in order.
        answer = "".join(p.get("text", "") for p in message["content"])
        start = text.find(answer, cursor)
        if start < 0:
            raise Skip(SKIP_NO_ANSWER, "assistant text not found in the rendered conversation")
        spans.append((start, start + len(answer)))
        cursor = start + len(answer)
    return text, spans


def _char_mask_to_tokens(
    processor: Any, text: str, spans: list[tuple[int, int]], ids: list[int]
) -> list[bool]:
    """Per processor token: does the loss see it? (image tokens never)."""
    tokenizer = processor.tokenizer
    image_id = getattr(processor, "image_token_id", None)
    plain = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    plain_ids = plain["input_ids"]
    in_answer = [any(a <= start < b for a, b in spans) for start, _ in plain["offset_mapping"]]
    mask: list[bool] = []
    j = 0
    i = 0
    while i < len(ids):
        if j < len(plain_ids) and plain_ids[j] == image_id and ids[i] == image_id:
            while i < len(ids) and ids[i] == image_id:  # the placeholder's run of image tokens
                mask.append(False)
                i += 1
            j += 1
            continue
        if j >= len(plain_ids) or plain_ids[j] != ids[i]:
            raise ValueError(
                "the processor's tokens do not line up with the rendered chat text; "
                "this processor is not supported yet"
            )
        mask.append(in_answer[j])
        i += 1
        j += 1
    return mask


def encode(record: Record, processor: Any, max_length: int) -> Encoded:
    """One record to un-batched tensors: input_ids, labels, pixel_values, image_grid_thw..."""
    import torch

    messages = chat_messages(record.messages)
    text, spans = assistant_spans(processor, messages)
    images = load_images(record)
    inputs = processor(
        text=[text], images=images or None, return_tensors="pt", add_special_tokens=False
    )
    ids = inputs["input_ids"][0].tolist()
    if len(ids) > max_length:
        raise Skip(SKIP_TOO_LONG, f"{len(ids)} tokens > max_length {max_length}")
    mask = _char_mask_to_tokens(processor, text, spans, ids)
    labels = torch.tensor([t if m else IGNORE for t, m in zip(ids, mask, strict=True)])
    answer_tokens = int(sum(mask))
    if not answer_tokens:
        raise Skip(SKIP_NO_ANSWER, "no assistant tokens left to learn from")
    features = {k: v[0] for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    if "mm_token_type_ids" in inputs:
        features["mm_token_type_ids"] = inputs["mm_token_type_ids"][0]
    for key in ("pixel_values", "image_grid_thw"):
        if key in inputs:
            features[key] = inputs[key]
    features["labels"] = labels
    return Encoded(features, len(ids), answer_tokens)


def collate(items: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch of encoded features; image tensors are concatenated (Qwen-VL layout)."""
    import torch

    longest = max(len(item["input_ids"]) for item in items)
    pad_values = {"input_ids": pad_id, "attention_mask": 0, "mm_token_type_ids": 0}
    pad_values["labels"] = IGNORE
    batch: dict[str, Any] = {}
    for key, value in pad_values.items():
        if key not in items[0]:
            continue
        rows = []
        for item in items:
            row = item[key]
            rows.append(torch.cat([row, row.new_full((longest - len(row),), value)]))
        batch[key] = torch.stack(rows)
    for key in ("pixel_values", "image_grid_thw"):
        present = [item[key] for item in items if key in item]
        if present:
            batch[key] = torch.cat(present)
    return batch
