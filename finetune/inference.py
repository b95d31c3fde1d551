"""Using a (fine-tuned) local VLM: batched greedy generation, on the GPU when there is one.

`LocalVLM.load(base, adapter)` loads the base model (a folder, a cached name or `tiny`) with an
optional LoRA adapter; `generate` answers a batch of chats (sharegpt-style messages whose
`<image>` markers take the given images, or content-part messages) in one left-padded
`generate` call. `AsyncBatcher` gathers concurrent async callers (the annotate graph, `bench
run`) into such batches. The spec these serve: `transformers:PATH[?adapter=DIR&...]`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from neuroonco.errors import ConfigError
from neuroonco.finetune.collate import chat_messages


@dataclass
class Chat:
    """One request: messages (`<image>` markers or content parts) and its images (PIL or paths)."""

    messages: list[dict[str, Any]]
    images: list[Any]
    max_new_tokens: int = 512


@dataclass
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    finished: bool  # stopped on its own (end of turn), not at max_new_tokens
    latency_ms: float


SPEC_OPTIONS = ("adapter", "batch_size", "max_new_tokens")


def parse_model_spec(model: str) -> tuple[str, dict[str, str]]:
    """`PATH[?adapter=DIR&batch_size=N&max_new_tokens=N]` to (base, options)."""
    base, _, query = model.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()} if query else {}
    unknown = set(options) - set(SPEC_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(unknown))} in transformers:{model} "
            f"(known: {', '.join(SPEC_OPTIONS)})"
        )
    for key in ("batch_size", "max_new_tokens"):
        if key in options and not (options[key].isdigit() and int(options[key]) > 0):
            raise ConfigError(f"{key} in transformers:{model} must be a positive integer")
    if not base.strip():
        raise ConfigError("transformers: needs a model, e.g. transformers:tiny or transformers:DIR")
    return base.strip(), options


def _as_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if all(isinstance(m.get("content"), str) for m in messages):
        return chat_messages(messages)
    return messages


def _load_image(image: Any) -> Any:
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, bytes):
        import io

        with Image.open(io.BytesIO(image)) as opened:
            return opened.convert("RGB")
    return image.convert("RGB")


class LocalVLM:
    """A loaded model and processor; `generate` is thread-safe (one batch at a time)."""

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        self.model = model
        self.processor = processor
        self.name = name
        self._lock = threading.Lock()

    @classmethod
    def load(cls, base: str, adapter: Path | None = None, device: str | None = None) -> LocalVLM:
        import torch

        from neuroonco.finetune.loading import load_with_adapter, pick_dtype

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, processor = load_with_adapter(base, adapter, pick_dtype("auto"))
        model.to(device).eval()
        name = base + (f"+{adapter}" if adapter else "")
        return cls(model, processor, name)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def generate(self, chats: list[Chat]) -> list[Generation]:
        """Greedy answers to a batch of chats, in order."""
        import torch

        started = time.perf_counter()
        processor = self.processor
        texts, images = [], []
        for chat in chats:
            texts.append(
                processor.apply_chat_template(
                    _as_parts(chat.messages), tokenize=False, add_generation_prompt=True
                )
            )
            images.extend(_load_image(image) for image in chat.images)
        tokenizer = processor.tokenizer
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # generation continues each row from its real end
        try:
            inputs = processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        finally:
            tokenizer.padding_side = side
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        limit = max(chat.max_new_tokens for chat in chats)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        with self._lock, torch.inference_mode():
            output = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=limit,
                pad_token_id=tokenizer.pad_token_id,
            )
        width = inputs["input_ids"].shape[1]
        ms = (time.perf_counter() - started) * 1000.0
        results = []
        for row, chat in enumerate(chats):
            new = output[row, width:].tolist()
            ends = [i for i, t in enumerate(new) if t in eos_ids]
            finished = bool(ends) and ends[0] < chat.max_new_tokens
            cut = ends[0] if ends else len(new)
            new = new[: min(cut, chat.max_new_tokens)]
            text = tokenizer.decode(new, skip_special_tokens=True)
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            results.append(Generation(text, prompt_tokens, len(new) + finished, finished, ms))
        return results


class AsyncBatcher:
    """Gathers concurrent `await generate(chat)` calls into batches of at most `batch_size`.

    The model runs in a worker thread so the event loop (other providers, the graph) goes on.
    """

    def __init__(self, vlm: LocalVLM, batch_size: int = 8) -> None:
        self.vlm = vlm
        self.batch_size = batch_size
        self._pending: list[tuple[Chat, asyncio.Future]] = []
        self._running = False

    async def generate(self, chat: Chat) -> Generation:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((chat, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            # Let the callers that are ready in this loop turn join the first batch.
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self.batch_size]
                del self._pending[: self.batch_size]
                try:
                    outputs = await asyncio.to_thread(self.vlm.generate, [c for c, _ in batch])
                except Exception as exc:  # a model failure fails its batch, not the loop
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), output in zip(batch, outputs, strict=True):
                    if not future.done():
                        future.set_result(output)
        finally:
            self._running = False


_CACHE: dict[tuple[str, str], LocalVLM] = {}
_CACHE_LOCK = threading.Lock()


def shared_vlm(base: str, adapter: Path | None = None) -> LocalVLM:
    """One loaded model per (base, adapter) per process: a panel or a bench run shares it."""
    key = (base, str(adapter.resolve()) if adapter else "")
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = LocalVLM.load(base, adapter)
        return _CACHE[key]


class TransformersBenchModel:
    """`bench run --model transformers:PATH[?adapter=DIR]`: batched greedy answers to questions.

    Not cached by `bench run` (an adapter can be retrained in place under the same path); a
    resumed run still skips the questions already in its predictions file.
    """

    cacheable = False

    def __init__(self, spec: str, options: dict[str, Any], vlm: LocalVLM | None = None) -> None:
        base, extra = parse_model_spec(spec.partition(":")[2])
        adapter = extra.get("adapter") or options.get("adapter")
        self.spec = spec
        self.max_new_tokens = int(extra["max_new_tokens"]) if "max_new_tokens" in extra else None
        self.vlm = vlm or shared_vlm(base, Path(adapter) if adapter else None)

    def _chat(self, request: Any) -> Chat:
        limit = min(request.max_tokens, self.max_new_tokens or request.max_tokens)
        content = "<image>" * len(request.images) + request.prompt
        return Chat([{"role": "user", "content": content}], list(request.images), limit)

    async def answer(self, request: Any) -> Any:
        return (await self.answer_batch([request]))[0]

    async def answer_batch(self, requests: list[Any]) -> list[Any]:
        from neuroonco.benchmark.models import BenchAnswer

        try:
            outputs = await asyncio.to_thread(self.vlm.generate, [self._chat(r) for r in requests])
        except Exception as exc:  # one failed batch is an error per question, not a crash
            error = f"{type(exc).__name__}: {exc}"
            return [BenchAnswer(text="", error=error) for _ in requests]
        return [
            BenchAnswer(
                text=o.text,
                input_tokens=o.input_tokens,
                output_tokens=o.output_tokens,
                latency_ms=o.latency_ms,
                cost_usd=0.0,
            )
            for o in outputs
        ]

    async def aclose(self) -> None:
        return None


def bench_model_factory(spec: str, options: dict[str, Any]) -> TransformersBenchModel:
    """The `transformers` factory of the bench model registry (benchmark/models.py)."""
    return TransformersBenchModel(spec, options)


def _register() -> None:
    try:
        from neuroonco.benchmark.models import register_bench_model
    except ImportError:  # a checkout without the benchmark package
        return
    register_bench_model("transformers", bench_model_factory)


_register()
