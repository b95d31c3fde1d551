"""One instruction, as stored (the `instructions` table) and as a chat exchange the exports write.

:func:`validate_messages` is the check every exported record passes before it is written: one
``<image>`` token per image, every image path resolving, roles alternating user/assistant after an
optional system message, no empty turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_basestring
from json.encoder import encode_basestring_ascii as _encode_ascii
from pathlib import Path
from typing import Any

from neuroonco.errors import NeuroOncoError

IMAGE_TOKEN = "<image>"


class InvalidRecord(NeuroOncoError):
    """An export record that a fine-tuning tool would reject or misread."""


@dataclass(slots=True)
class Instruction:
    id: str
    slice_id: str
    run_id: str
    subject_id: str
    diagnosis: str | None
    task: str
    kind: str  # closed | open
    style: str  # letter | cot | open
    template: int
    question: str  # the stem, without options or answer instructions
    prompt: str  # what the user turn says (stem, options, how to answer)
    answer: str  # the right letter (closed) or the reference answer (open)
    response: str  # what the assistant turn says
    image: str  # path of the slice image relative to the store's folder
    options: dict[str, str] | None = None
    trap: bool = False
    original_answer: str | None = None  # display text of the right value, on traps
    keywords: list[str] = field(default_factory=list)
    split: str = "train"
    paraphrased: bool = False
    # Encodings shared by many questions, computed once (see questions._frame).
    options_json: str | None = None
    user_json: str | None = None

    @property
    def user_content(self) -> str:
        return IMAGE_TOKEN + self.prompt

    def messages(self, n_images: int = 1) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": IMAGE_TOKEN * n_images + self.prompt},
            {"role": "assistant", "content": self.response},
        ]

    def row(self) -> tuple[Any, ...]:
        """The `instructions` table row, in :data:`ROW_COLUMNS` order.

        The columns of :data:`NULLABLE_AS_EMPTY` hold ``""`` for NULL (they are never empty
        otherwise): the insert maps it back (``nullif``), since Python's sqlite3 binds a string
        far faster than ``None``, which it first tries to adapt.
        """
        options = self.options_json
        if options is None:
            options = "" if self.options is None else json.dumps(self.options, ensure_ascii=False)
        return (
            self.id,
            self.slice_id,
            self.run_id,
            self.task,
            self.kind,
            self.question,
            options,
            self.answer,
            self.split,
            self.style,
            self.response,
            int(self.trap),
            self.original_answer or "",
            keywords_json(self.keywords) if self.keywords else "",
            self.template,
            int(self.paraphrased),
        )


def encode_string(text: str) -> str:
    """``text`` as a JSON string literal, as ``json.dumps(text, ensure_ascii=False)`` writes it."""
    return _encode_basestring(text)


def keywords_json(keywords: list[str]) -> str:
    """``json.dumps(keywords)``, byte for byte, without its per-call cost (which is about four
    times that of encoding the strings: it builds an encoder each time)."""
    if all(type(k) is str for k in keywords):
        return "[" + ", ".join(map(_encode_ascii, keywords)) + "]"
    return json.dumps(keywords)


def check_turns(user: str, response: str, n_images: int) -> None:
    """The per-record check of a single-turn record (the hot path of the exports)."""
    if user.count(IMAGE_TOKEN) != n_images:
        raise InvalidRecord(
            f"{user.count(IMAGE_TOKEN)} {IMAGE_TOKEN} token(s) for {n_images} image(s)"
        )
    if not response or response.isspace() or IMAGE_TOKEN in response:
        raise InvalidRecord("the assistant turn is empty or holds an image token")


ROW_COLUMNS = (
    "id",
    "slice_id",
    "run_id",
    "task",
    "kind",
    "question",
    "options",
    "answer",
    "split",
    "style",
    "response",
    "trap",
    "original_answer",
    "keywords",
    "template",
    "paraphrased",
)
# Columns whose NULL a row carries as "" (see Instruction.row).
NULLABLE_AS_EMPTY = frozenset({"options", "original_answer", "keywords"})


def validate_messages(
    messages: list[dict[str, str]], images: list[str], root: Path | None, *, check_files: bool
) -> None:
    """Raise :class:`InvalidRecord` saying what is wrong with one chat record."""
    if not messages:
        raise InvalidRecord("a record without messages")
    tokens = 0
    expected = "system" if messages[0].get("role") == "system" else "user"
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role != expected:
            roles = [m.get("role") for m in messages]
            raise InvalidRecord(f"roles {roles} do not alternate user/assistant")
        expected = "assistant" if role != "assistant" else "user"
        if not content or content.isspace():
            raise InvalidRecord(f"message {i} ({role}) is empty")
        tokens += content.count(IMAGE_TOKEN)
    if expected != "user":
        raise InvalidRecord("the last message is not the assistant's")
    if tokens != len(images):
        raise InvalidRecord(f"{tokens} {IMAGE_TOKEN} token(s) for {len(images)} image(s)")
    if check_files and root is not None:
        for image in images:
            if not (root / image).is_file():
                raise InvalidRecord(f"image {image} does not resolve under {root}")
