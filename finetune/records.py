"""One instruction, as stored (the `instructions` table) and as a chat exchange the exports write.

:func:`validate_messages` is the check every exported record passes before it is written: one
``<image>`` token per image, every image path resolving, roles alternating user/assistant after an
optional system message, no empty turn.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _encode_basestring
from json.encoder import encode_basestring_ascii as _encode_ascii
from operator import itemgetter
from pathlib import Path
from typing import Any

from neuroonco.errors import NeuroOncoError

IMAGE_TOKEN = "<image>"


class InvalidRecord(NeuroOncoError):
    """An export record that a fine-tuning tool would reject or misread."""


# Where each field sits in an Instruction: the `instructions` row first (ROW_COLUMNS order, NULL
# carried as "" in the nullable text columns, booleans as 0/1), then what the exports also need.
_FIELDS = (
    "id",
    "slice_id",
    "run_id",
    "task",
    "kind",  # closed | open
    "question",  # the stem, without options or answer instructions
    "options_json",  # the options JSON-encoded ("" for an open instruction)
    "answer",  # the right letter (closed) or the reference answer (open)
    "split",
    "style",  # letter | cot | open
    "response",  # what the assistant turn says
    "trap_flag",  # 1 on a trap, else 0
    "original_text",  # display text of the right value on traps, else ""
    "keywords_json",  # the keywords JSON-encoded ("" when none)
    "template",
    "paraphrased_flag",
    "subject_id",
    "diagnosis",
    "image",  # path of the slice image relative to the store's folder
    "options",  # letter -> display text (closed), None (open)
    "keywords",  # what a scorer checks in an open answer
    "user_json",  # the user turn ("<image>" + prompt) JSON-encoded, quotes included
)
_INDEX = {name: i for i, name in enumerate(_FIELDS)}
ROW_WIDTH = 16


class Instruction(tuple):
    """One instruction: its `instructions` table row (``self[:16]``, :data:`ROW_COLUMNS` order)
    followed by what the exports need besides.

    A tuple, because the export makes about a million of them: built in one step, its row is a
    slice and its fields are read by index (the generator and the llamafactory writer use the
    positions; everything else the named properties). :meth:`make` builds one from keywords;
    :meth:`replace` returns a changed copy. The user turn is kept JSON-encoded (``user_json``),
    as the llamafactory line writes it; :attr:`prompt` decodes it.
    """

    __slots__ = ()

    @classmethod
    def make(
        cls,
        *,
        id: str,
        slice_id: str,
        run_id: str,
        subject_id: str,
        diagnosis: str | None,
        task: str,
        kind: str,
        style: str,
        template: int,
        question: str,
        answer: str,
        response: str,
        image: str,
        prompt: str | None = None,
        options: dict[str, str] | None = None,
        trap: bool = False,
        original_answer: str | None = None,
        keywords: list[str] | tuple[str, ...] = (),
        split: str = "train",
        paraphrased: bool = False,
        user_json: str | None = None,
    ) -> Instruction:
        """An instruction from its fields (the generator's hot path builds the tuple itself)."""
        if user_json is None:
            user_json = encode_string(IMAGE_TOKEN + (question if prompt is None else prompt))
        return cls(
            (
                id,
                slice_id,
                run_id,
                task,
                kind,
                question,
                "" if options is None else json.dumps(options, ensure_ascii=False),
                answer,
                split,
                style,
                response,
                1 if trap else 0,
                original_answer or "",
                keywords_json(list(keywords)) if keywords else "",
                template,
                1 if paraphrased else 0,
                subject_id,
                diagnosis,
                image,
                options,
                keywords,
                user_json,
            )
        )

    def replace(self, **changes: Any) -> Instruction:
        """A copy with ``changes`` (field names as :meth:`make` takes them)."""
        fields = dict(zip(_FIELDS, self, strict=True))
        for name, value in changes.items():
            if name == "trap":
                fields["trap_flag"] = 1 if value else 0
            elif name == "paraphrased":
                fields["paraphrased_flag"] = 1 if value else 0
            elif name == "original_answer":
                fields["original_text"] = value or ""
            elif name == "keywords":
                fields["keywords"] = value
                fields["keywords_json"] = keywords_json(list(value)) if value else ""
            elif name == "options":
                fields["options"] = value
                fields["options_json"] = (
                    "" if value is None else json.dumps(value, ensure_ascii=False)
                )
            elif name == "prompt":
                fields["user_json"] = encode_string(IMAGE_TOKEN + value)
            elif name in _INDEX:
                fields[name] = value
            else:
                raise TypeError(f"Instruction has no field {name!r}")
        return type(self)(fields[name] for name in _FIELDS)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(_FIELDS, self, strict=True))
        return f"Instruction({shown})"

    def __reduce__(self) -> tuple:
        return (type(self), (tuple(self),))

    @property
    def trap(self) -> bool:
        return bool(self[11])

    @property
    def original_answer(self) -> str | None:
        return self[12] or None

    @property
    def paraphrased(self) -> bool:
        return bool(self[15])

    @property
    def user_content(self) -> str:
        """The user turn: ``<image>`` then the prompt."""
        return json.loads(self[21])

    @property
    def prompt(self) -> str:
        """What the user turn says after the image (stem, options, how to answer)."""
        return self.user_content[len(IMAGE_TOKEN) :]

    def messages(self, n_images: int = 1) -> list[dict[str, str]]:
        return [
            {"role": "user", "content": IMAGE_TOKEN * n_images + self.prompt},
            {"role": "assistant", "content": self[10]},
        ]

    def row(self) -> tuple[Any, ...]:
        """The `instructions` table row, in :data:`ROW_COLUMNS` order.

        The columns of :data:`NULLABLE_AS_EMPTY` hold ``""`` for NULL (they are never empty
        otherwise): the insert maps it back (``nullif``), since Python's sqlite3 binds a string
        far faster than ``None``, which it first tries to adapt.
        """
        return self[:ROW_WIDTH]


for _i, _name in enumerate(_FIELDS):
    setattr(Instruction, _name, property(itemgetter(_i), doc=f"field {_i}: {_name}"))
ROW_OF = itemgetter(slice(0, ROW_WIDTH))
"""An instruction's row, for ``map`` (the same as :meth:`Instruction.row`)."""


def encode_string(text: str) -> str:
    """``text`` as a JSON string literal, as ``json.dumps(text, ensure_ascii=False)`` writes it."""
    return _encode_basestring(text)


def keywords_json(keywords: list[str]) -> str:
    """``json.dumps(keywords)``, byte for byte, without its per-call cost (which is about four
    times that of encoding the strings: it builds an encoder each time)."""
    try:  # the C encoder refuses anything but a string, so no per-item type check is needed
        return "[" + ", ".join(map(_encode_ascii, keywords)) + "]"
    except TypeError:
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
# The row's columns are the first fields of an Instruction, in this order.
_ROW_FIELD = {
    "options": "options_json",
    "trap": "trap_flag",
    "original_answer": "original_text",
    "keywords": "keywords_json",
    "paraphrased": "paraphrased_flag",
}
assert tuple(_ROW_FIELD.get(c, c) for c in ROW_COLUMNS) == _FIELDS[:ROW_WIDTH]
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
