"""The one text each option is shown by, and the concept an option text stands for.

Closed questions show a vocabulary value through ``display_name`` (schemas/vocabulary.py) and a
look-alike outside the vocabulary through its name in schemas/lookalikes.py, so no question ever
offers two spellings of one thing. :func:`concept_of` maps an option text back to its concept, which
lets tests and the benchmark audit check that options are distinct and a trap's answer is gone.
"""

from __future__ import annotations

from functools import lru_cache

from neuroonco.schemas import vocabulary
from neuroonco.schemas.lookalikes import ABNORMAL, HEALTHY, OUT_OF_VOCABULARY
from neuroonco.schemas.vocabulary import FIELDS, normalise

NONE_OF_THE_ABOVE = "None of the above"
_OOV_BY_NAME = {name.lower(): key for key, name in OUT_OF_VOCABULARY.items()}


@lru_cache(maxsize=1024)
def display_name(field: str, value: str) -> str:
    """The display text of a vocabulary value, or of a look-alike outside the vocabulary."""
    if field == "diagnosis" and value in OUT_OF_VOCABULARY:
        return OUT_OF_VOCABULARY[value]
    return vocabulary.display_name(field, value)


@lru_cache(maxsize=4096)
def concept_of(field: str, text: str) -> str:
    """The concept an option text names: a vocabulary value, ``oov:<key>``, or ``text:<lower>``.

    Healthy/Abnormal and "None of the above" are their own concepts.
    """
    lowered = text.strip().lower()
    if lowered == NONE_OF_THE_ABOVE.lower():
        return "none_of_the_above"
    if field == "diagnosis" and text in (HEALTHY, ABNORMAL):
        return lowered
    if field == "diagnosis" and lowered in _OOV_BY_NAME:
        return "oov:" + _OOV_BY_NAME[lowered]
    try:
        member = normalise(FIELDS[field], text)
    except ValueError:
        return "text:" + lowered
    return member.value if member is not None else "text:" + lowered
