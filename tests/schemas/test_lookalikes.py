"""The look-alike table: plausible, distinct distractors; the official file's families kept."""

from __future__ import annotations

from neuroonco.finetune.names import concept_of, display_name
from neuroonco.schemas.lookalikes import (
    BINARY_DIAGNOSES,
    LOOKALIKES,
    LOOKALIKES_VERSION,
    OUT_OF_VOCABULARY,
)
from neuroonco.schemas.vocabulary import Diagnosis


def test_every_typed_diagnosis_has_four_distinct_lookalikes():
    typed = {d.value for d in Diagnosis} - BINARY_DIAGNOSES
    assert set(LOOKALIKES) == typed and LOOKALIKES_VERSION
    for diagnosis, others in LOOKALIKES.items():
        assert len(others) >= 4  # a trap still shows four wrong options
        concepts = [concept_of("diagnosis", display_name("diagnosis", o)) for o in others]
        assert len(set(concepts)) == len(concepts)
        assert diagnosis not in concepts  # never the answer under another name
        for other in others:
            assert other in OUT_OF_VOCABULARY or other in {d.value for d in Diagnosis}


def test_the_official_benchmark_families_are_kept():
    assert {"metastasis", "lymphoma", "abscess"} <= set(LOOKALIKES["glioma"])
    assert {"schwannoma", "hemangiopericytoma", "dural_metastasis"} <= set(LOOKALIKES["meningioma"])
    assert {"craniopharyngioma", "rathke_cleft_cyst"} <= set(LOOKALIKES["pituitary_tumor"])
    assert {"meningioma", "hemangiopericytoma", "dural_metastasis"} <= set(LOOKALIKES["schwannoma"])
