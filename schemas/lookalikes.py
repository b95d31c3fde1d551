"""Diagnosis look-alikes: the clinically plausible distractors of a closed diagnosis question.

A multiple-choice diagnosis question is only informative when its wrong options are diagnoses a
radiologist would actually weigh against the right one (a glioma against a metastasis, lymphoma
or abscess; a meningioma against a schwannoma, haemangiopericytoma or dural metastasis). The table
is versioned: an instruction set records :data:`LOOKALIKES_VERSION`, so a change of distractors is
visible in its stats and can be reproduced.

Each entry is either a vocabulary diagnosis (shown through its display name) or a concept outside
the vocabulary (lymphoma, abscess, ...), named by :data:`OUT_OF_VOCABULARY`. The MM-NeuroOnco-Bench
v1.0 closed file uses the same families (glioma: metastasis/lymphoma/abscess; meningioma and
schwannoma: each other, hemangiopericytoma, dural metastasis; pituitary: craniopharyngioma, Rathke
cleft cyst) but mixes spellings and offers sub-types of the answer (ganglioglioma/DNET for a
neuronal tumour, pilocytic astrocytoma for glioma's family); here no look-alike is a sub-type or
another spelling of its diagnosis. Every diagnosis has at least four, so a trap (the right option
removed) still shows four wrong options.
"""

from __future__ import annotations

LOOKALIKES_VERSION = "1"

# Concepts outside the controlled vocabulary, with the one name they are shown by.
OUT_OF_VOCABULARY: dict[str, str] = {
    "lymphoma": "Primary CNS lymphoma",
    "abscess": "Brain abscess",
    "hemangioblastoma": "Hemangioblastoma",
    "tumefactive_demyelination": "Tumefactive demyelination",
    "hemangiopericytoma": "Hemangiopericytoma",
    "dural_metastasis": "Dural metastasis",
    "craniopharyngioma": "Craniopharyngioma",
    "rathke_cleft_cyst": "Rathke cleft cyst",
    "germinoma": "Germinoma",
    "epidermoid_cyst": "Epidermoid cyst",
    "choroid_plexus_papilloma": "Choroid plexus papilloma",
    "focal_cortical_dysplasia": "Focal cortical dysplasia",
}

# Diagnosis (vocabulary value) -> look-alikes, most plausible first. Vocabulary values and
# OUT_OF_VOCABULARY keys only. `tumor` and `no_tumor` are asked as healthy/abnormal instead.
LOOKALIKES: dict[str, tuple[str, ...]] = {
    "glioma": (
        "metastasis",
        "lymphoma",
        "abscess",
        "tumefactive_demyelination",
        "hemangioblastoma",
    ),
    "meningioma": ("schwannoma", "hemangiopericytoma", "dural_metastasis", "lymphoma"),
    "pituitary_tumor": ("craniopharyngioma", "rathke_cleft_cyst", "meningioma", "germinoma"),
    "metastasis": ("glioma", "lymphoma", "abscess", "tumefactive_demyelination"),
    "schwannoma": ("meningioma", "epidermoid_cyst", "hemangiopericytoma", "dural_metastasis"),
    "ependymoma": ("embryonal_tumor", "glioma", "choroid_plexus_papilloma", "hemangioblastoma"),
    "embryonal_tumor": ("ependymoma", "glioma", "metastasis", "choroid_plexus_papilloma"),
    "neuronal_tumor": ("glioma", "focal_cortical_dysplasia", "ependymoma", "embryonal_tumor"),
}

# Diagnoses asked in the binary healthy/abnormal form (no subtype to choose among).
BINARY_DIAGNOSES: frozenset[str] = frozenset({"tumor", "no_tumor"})
HEALTHY, ABNORMAL = "Healthy", "Abnormal"


def lookalikes(diagnosis: str) -> tuple[str, ...]:
    """The look-alikes of ``diagnosis`` (a vocabulary value); raises ``KeyError`` for none."""
    return LOOKALIKES[diagnosis]
