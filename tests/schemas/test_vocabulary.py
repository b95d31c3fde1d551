"""The normaliser on MM-NeuroOnco's own spellings: every value of the official files reads, and
out-of-vocabulary concepts never land on a near miss."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from neuroonco.schemas import oov
from neuroonco.schemas.vocabulary import (
    FIELDS,
    Diagnosis,
    Location,
    Modality,
    Shape,
    Size,
    Spread,
    _normalise_text,
    normalise,
    read_value,
)

REFERENCE = Path("/work/shared/reference/mm-neuroonco-bench-v1.0")
CLOSED = REFERENCE / "mm-neuroonco_benchmark_closed_v1.0.json"
OPEN = REFERENCE / "mm-neuroonco_benchmark_open_v1.0.json"
official = pytest.mark.skipif(not CLOSED.exists(), reason="official benchmark files absent")
REFUSAL = "None of the above"


def _read_anywhere(field: str, text: str) -> tuple[str, str] | None:
    """(how, concept): in its own field first, then in any other field; None when unread."""
    try:
        return "own", read_value(field, text).concept
    except ValueError:
        pass
    for other in FIELDS:
        try:
            return "other", read_value(other, text).concept
        except ValueError:
            continue
    return None


@official
def test_every_option_of_the_official_closed_file_reads() -> None:
    kinds: Counter[str] = Counter()
    unknown: list[tuple[str, str]] = []
    cross: list[tuple[str, str]] = []
    for record in json.loads(CLOSED.read_text(encoding="utf-8")):
        for pair in record["vqa_pairs"]:
            field = pair["question_type"]
            for text in pair["options"].values():
                if text == REFUSAL:
                    continue
                found = _read_anywhere(field, text)
                if found is None:
                    unknown.append((field, text))
                    continue
                if found[0] == "other":
                    cross.append((field, text))
                    continue
                kinds[read_value(field, text).kind] += 1
    assert unknown == []
    # A few options are values of another field (a margin offered as a shape, "Multifocal" as a
    # size): the audit reports those when they are the answer.
    assert sorted(set(cross)) == [
        ("shape", "Ill-defined"),
        ("shape", "Well-circumscribed mass"),
        ("size", "Multifocal"),
        ("size", "Multifocal lesions"),
        ("size", "Multifocal, scattered"),
        ("size", "Multiple scattered lesions"),
    ]
    assert kinds["value"] > 4000 and kinds["out_of_vocabulary"] > 2000 and kinds["region"] > 300


@official
def test_every_keyword_of_the_official_open_file_reads() -> None:
    keywords = {
        keyword
        for record in json.loads(OPEN.read_text(encoding="utf-8"))
        for pair in record["qa_pairs"]
        for keyword in pair["eval_keywords"]
    }
    assert keywords and all(_read_anywhere("diagnosis", k) is not None for k in keywords)


@pytest.mark.parametrize(
    ("enum", "text", "value"),
    [
        (Shape, "Irregular/Spiculated", "irregular"),
        (Size, "Large/Extensive", "large"),
        (Size, "Small/Focal", "small"),
        (Spread, "Dominant core with satellites", "dominant_with_satellites"),
        (Location, "Center of the image", "center"),
        (Location, "Center of the Image", "center"),
        (Location, "Upper-Left Region", "upper_left"),
        (Location, "Lower-center region", "lower_center"),
        (Location, "Center-Right Region", "center_right"),
        (Location, "Central sector", "center"),  # the open file's reference answers
        (Location, "the upper-center region", "upper_center"),
        (Modality, "T1_weighted_MRI_with_contrast", "t1ce"),
        (Modality, "T1-weighted without contrast", "t1"),
        (Modality, "MRI brain FLAIR", "flair"),
        (Diagnosis, "embryonal", "embryonal_tumor"),
        (Diagnosis, "pituitary", "pituitary_tumor"),
        (Diagnosis, "Healthy", "no_tumor"),
        (Spread, "Multiple discrete lesions without a dominant focus", "multifocal"),
        (Spread, "Multiple focal lesions", "multifocal"),
        (Spread, "Focal lesion without evident spread", "solitary"),
        (Spread, "Isolated lesion in the posterior fossa", "solitary"),
        (Shape, "Round/Ovoid and smooth", "round_oval"),
        (Size, "Large and lobulated", "large"),
    ],
)
def test_seed_spellings_map(enum: type, text: str, value: str) -> None:
    assert normalise(enum, text) == enum(value)


@pytest.mark.parametrize(
    ("field", "text", "concept"),
    [
        ("modality", "DWI", "dwi"),
        ("modality", "Diffusion-weighted imaging", "dwi"),
        ("modality", "CT head without contrast", "ct_noncontrast"),
        ("modality", "CT", "ct"),
        ("diagnosis", "lymphoma", "lymphoma"),
        ("diagnosis", "primary_CNS_lymphoma", "lymphoma"),
        ("diagnosis", "Abscess", "abscess"),
        ("diagnosis", "DNET", "dnet"),
        ("diagnosis", "dysembryoplastic_neuroepithelial_tumor", "dnet"),
        ("size", "No lesion", "no_lesion"),
        ("size", "Diffuse", "diffuse_infiltrative"),
        ("size", "1–3 cm", "absolute_size:1_3_cm"),
        ("size", "Large (> 3 cm)", "absolute_size:large_3_cm"),
        ("shape", "Linear", "linear"),
        ("shape", "Irregular linear", "linear"),
        ("spread", "Diffuse", "diffuse_infiltrative"),
        ("spread", "Diffuse infiltration without a dominant core", "diffuse_infiltrative"),
        ("spread", "Leptomeningeal spread", "leptomeningeal_dissemination"),
        ("spread", "No visible spread beyond the primary lesion", "no_spread"),
        ("location", "Posterior fossa", "posterior_fossa:posterior_fossa"),
        ("location", "Posterior Fossa", "posterior_fossa:posterior_fossa"),
        ("location", "Left hemisphere", "left_hemisphere"),
        ("location", "No lesion visible", "no_lesion"),
    ],
)
def test_out_of_vocabulary_concepts_never_map(field: str, text: str, concept: str) -> None:
    reading = read_value(field, text)
    assert reading.kind == "out_of_vocabulary"
    assert reading.concept == f"oov:{field}:{concept}"
    assert oov.out_of_vocabulary(field, text) == concept
    with pytest.raises(ValueError, match="outside the"):
        normalise(FIELDS[field], text)


def test_diffuse_is_not_multifocal_and_dwi_is_not_a_sequence() -> None:
    with pytest.raises(ValueError, match="use one of: solitary"):
        normalise(Spread, "Diffuse")
    with pytest.raises(ValueError, match="use one of: t1, t1ce"):
        normalise(Modality, "DWI")
    # An unknown word blocks the word rules: nothing is guessed from "multifocal" in it.
    with pytest.raises(ValueError, match="is not a valid spread"):
        normalise(Spread, "Multifocal cystic blobs glowing")


def test_location_sides_map_to_what_they_determine_and_no_further() -> None:
    right = read_value("location", "Right side of the image")
    assert right.kind == "region"
    assert right.cells == ("upper_right", "center_right", "lower_right")
    assert read_value("location", "Right peripheral region").concept == right.concept
    assert read_value("location", "Upper region").cells == (
        "upper_left",
        "upper_center",
        "upper_right",
    )
    periphery = read_value("location", "Periphery of the image").cells
    assert len(periphery) == 8 and "center" not in periphery
    with pytest.raises(ValueError, match="only narrows the location"):
        normalise(Location, "Left side of the image")  # a describer must name the row too
    assert read_value("location", "Centered in the middle of the image").value == "center"
    # "Right side" without the image may be the patient's; "posterior" is anatomy, not the image.
    for text in (
        "Right-sided region",
        "Predominantly on the right side",
        "Posterior edge of the image",
    ):
        assert read_value("location", text).kind == "out_of_vocabulary"
    assert read_value("location", "Inferior edge of the image").kind == "region"
    assert read_value("location", "Inferior edge").kind == "out_of_vocabulary"


def test_concepts_compare_spellings_not_strings() -> None:
    assert read_value("modality", "T2_weighted").concept == read_value("modality", "T2").concept
    assert read_value("diagnosis", "Schwannoma").concept == "diagnosis:schwannoma"
    glioblastoma = read_value("diagnosis", "glioblastoma")
    # A narrower diagnosis maps to its parent value but stays its own concept.
    assert glioblastoma.value == "glioma"
    assert glioblastoma.concept == "diagnosis:glioblastoma"
    assert glioblastoma.broader == "diagnosis:glioma"
    assert read_value("diagnosis", "dural_metastasis").concept == (
        read_value("diagnosis", "Dural Metastasis").concept
    )


def test_missing_values_and_existing_synonyms_keep_working() -> None:
    assert normalise(Spread, "unknown") is None
    assert read_value("size", "").kind == "missing"
    assert normalise(Spread, "multiple") == Spread.multifocal
    assert normalise(Diagnosis, "notumor") == Diagnosis.no_tumor
    assert normalise(Diagnosis, "glioblastoma") == Diagnosis.glioma
    assert normalise(Modality, "T1 with contrast") == Modality.t1ce


def test_vocabulary_values_take_the_fast_path() -> None:
    before = _normalise_text.cache_info()
    for field, enum in FIELDS.items():
        for member in enum:
            assert normalise(enum, member.value) == member, field
    after = _normalise_text.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_oov_table_is_versioned() -> None:
    assert isinstance(oov.OOV_VERSION, int) and oov.OOV_VERSION >= 1
    assert set(oov.OUT_OF_VOCABULARY) <= set(FIELDS)
