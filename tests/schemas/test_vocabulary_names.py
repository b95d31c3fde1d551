"""display_name and seed_spelling: one text per value, and MM-NeuroOnco's own spelling of it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from neuroonco.schemas.vocabulary import FIELDS, display_name, normalise, seed_spelling

REFERENCE = Path("/work/shared/reference/mm-neuroonco-bench-v1.0")
CLOSED = REFERENCE / "mm-neuroonco_benchmark_closed_v1.0.json"


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_display_names_are_one_per_value_and_normalise_back(field: str) -> None:
    enum = FIELDS[field]
    names = {member.value: display_name(field, member) for member in enum}
    assert len(set(names.values())) == len(names), "two values share a display name"
    squashed = {"".join(ch for ch in n.lower() if ch.isalnum()) for n in names.values()}
    assert len(squashed) == len(names), "two display names differ only in case or punctuation"
    for value, name in names.items():
        assert normalise(enum, name) == enum(value)
        # Any spelling of the value gives the same single display name.
        assert display_name(field, value) == name
        assert display_name(field, value.upper()) == name


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_seed_spellings_normalise_back(field: str) -> None:
    enum = FIELDS[field]
    for member in enum:
        assert normalise(enum, seed_spelling(field, member)) == member


def test_known_names() -> None:
    assert display_name("modality", "t1ce") == "T1-weighted post-contrast"
    assert display_name("modality", "T1_CE") == "T1-weighted post-contrast"
    assert seed_spelling("size", "small") == "Small/Focal"
    assert seed_spelling("shape", "irregular") == "Irregular/Spiculated"
    assert seed_spelling("spread", "dominant_with_satellites") == "Dominant core with satellites"
    assert seed_spelling("location", "upper_left") == "Upper-Left Region"
    # Fields the seed never asks about use the display name.
    assert seed_spelling("margins", "ill_defined") == display_name("margins", "ill_defined")


def test_bad_field_or_value_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a vocabulary field"):
        display_name("colour", "red")
    with pytest.raises(ValueError, match="modality"):
        seed_spelling("modality", "PET")
    with pytest.raises(ValueError, match="not a value"):
        display_name("size", None)


def _seed_counts() -> dict[tuple[str, str], tuple[Counter[str], Counter[str]]]:
    """(field, value) -> (answer spellings, option spellings) in the official closed file."""
    counts: dict[tuple[str, str], tuple[Counter[str], Counter[str]]] = {}
    for record in json.loads(CLOSED.read_text()):
        for pair in record["vqa_pairs"]:
            field = pair["question_type"]
            answer = pair["options"].get(pair["answer"])
            if pair.get("meta_trap"):
                answer = pair.get("meta_original_answer")
            for text in pair["options"].values():
                try:
                    member = normalise(FIELDS[field], text)
                except ValueError:
                    continue
                if member is None:
                    continue
                counts.setdefault((field, member.value), (Counter(), Counter()))[1][text] += 1
            if answer is not None:
                try:
                    member = normalise(FIELDS[field], answer)
                except ValueError:
                    continue
                if member is not None:
                    counts.setdefault((field, member.value), (Counter(), Counter()))[0][answer] += 1
    return counts


@pytest.mark.skipif(not CLOSED.exists(), reason="official benchmark files not on this machine")
def test_seed_spelling_is_the_official_files_most_used_spelling() -> None:
    # The rule: the spelling the closed file uses most as an answer (trap originals included),
    # or, for a value never answered, the spelling it uses most as an option.
    counts = _seed_counts()
    checked = 0
    for (field, value), (answers, options) in counts.items():
        expected = (answers or options).most_common(1)[0][0]
        assert seed_spelling(field, value) == expected, (field, value, answers, options)
        checked += 1
    assert checked >= 30  # every seed field's values are in the file
