"""`--base-model tiny`: a tiny randomly initialised Qwen2-VL built entirely in code.

Config, tokenizer, image processor and chat template are made here, so nothing is downloaded:
it is the CPU dry run for users and the fixture of our tests. The tokenizer is a byte-level BPE
trained in memory on a small fixed corpus (deterministic), carrying Qwen2-VL's special tokens, and
the chat template is Qwen2-VL's, so the processor lays out image tokens exactly as it does for the
real models. Images are capped at a few patches so a training step takes milliseconds.
"""

from __future__ import annotations

from typing import Any

TINY = "tiny"

# Qwen2-VL's special tokens, in its order (ids follow the learned vocabulary here).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL-Instruct's chat template (images as {"type": "image"} content parts).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Words our instruction set uses, so the tiny vocabulary has merges for them (fewer tokens per
# answer); any other text still tokenises, byte by byte.
_CORPUS = (
    "You are a helpful assistant. Question Answer Options A B C D E F "
    "What is the diagnosis? Which sequence is this? Where is the lesion? Describe the image. "
    "glioma meningioma pituitary tumor metastasis schwannoma ependymoma embryonal neuronal "
    "no tumor t1 t1ce t2 flair T1-weighted post-contrast T2-weighted FLAIR axial slice MRI brain "
    "small medium large round oval lobulated irregular solitary multifocal satellites "
    "upper lower left right center midline bilateral well circumscribed ill defined homogeneous "
    "heterogeneous enhancement none solid ring patchy edema mild extensive hyperintense "
    "hypointense isointense mixed signal intensity size shape spread location laterality margins "
    'texture cannot be determined from this image reasoning because the {"answer": ""} '
    "0123456789 .,:;!?()[]{}<>-_/'\"\n"
)

TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    # head_dim 16 -> 8 rotary frequencies split over (temporal, height, width).
    "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
}
VISION = {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2}
# At most 4x4 merged patches (16 image tokens) per image: fast on a CPU, layout unchanged.
MIN_PIXELS = 28 * 28
MAX_PIXELS = 112 * 112


def is_tiny(name: str) -> bool:
    """Whether a --base-model value asks for the in-code tiny model."""
    return str(name).strip().lower() == TINY


def build_tokenizer() -> Any:
    """A byte-level BPE tokenizer with Qwen2-VL's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=640,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def processor_class() -> Any:
    """Qwen2VLProcessor without its video processor, which needs torchvision (not installed here).

    Everything else (image token expansion, chat template, batching) is Qwen2VLProcessor's own.
    """
    from transformers import ProcessorMixin, Qwen2VLProcessor

    class TinyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = "<|image_pad|>"
            self.video_token = "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return TinyQwen2VLProcessor


def build_processor() -> Any:
    """The tiny processor: Qwen2-VL's layout over the tiny tokenizer and a PIL image processor."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return processor_class()(
        image_processor=image_processor,
        tokenizer=build_tokenizer(),
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer: Any) -> Any:
    """A Qwen2VLConfig a few hundred kB in size, token ids taken from the tiny tokenizer."""
    from transformers import Qwen2VLConfig

    ids = tokenizer.convert_tokens_to_ids
    return Qwen2VLConfig(
        text_config={
            **TEXT,
            "vocab_size": len(tokenizer),
            "bos_token_id": ids("<|endoftext|>"),
            "eos_token_id": ids("<|im_end|>"),
            "pad_token_id": ids("<|endoftext|>"),
        },
        vision_config=VISION,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def build_tiny(seed: int = 0) -> tuple[Any, Any]:
    """(model, processor): a randomly initialised tiny Qwen2-VL, the same for the same seed."""
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    processor = build_processor()
    config = build_config(processor.tokenizer)
    # A local generator keeps the caller's global RNG state untouched.
    fork_devices: list[int] = []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model, processor
