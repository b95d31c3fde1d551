"""Small benchmark files in the official v1.0 format, with PNG images beside them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

OFFICIAL = Path("/work/shared/reference/mm-neuroonco-bench-v1.0")
OFFICIAL_CLOSED = OFFICIAL / "mm-neuroonco_benchmark_closed_v1.0.json"
OFFICIAL_OPEN = OFFICIAL / "mm-neuroonco_benchmark_open_v1.0.json"
NOTA = "None of the above"


def closed_records() -> list[dict]:
    """Three records, seven questions: two traps, one two-option question."""
    return [
        {
            "id": 1,
            "image_path": "glioma/a.png",
            "vqa_pairs": [
                {
                    "question_type": "diagnosis",
                    "question": "What is the most likely diagnosis?",
                    "options": {
                        "A": "glioma",
                        "B": "meningioma",
                        "C": "metastasis",
                        "D": "schwannoma",
                        "E": NOTA,
                    },
                    "answer": "A",
                },
                {
                    "question_type": "modality",
                    "question": "What MRI sequence is shown?",
                    "options": {"A": "T1", "B": "FLAIR", "C": "DWI", "D": "T2", "E": NOTA},
                    "answer": "E",
                    "meta_trap": True,
                    "meta_original_answer": "T1_CE",
                },
            ],
        },
        {
            "id": 2,
            "image_path": "meningioma/b.png",
            "vqa_pairs": [
                {
                    "question_type": "diagnosis",
                    "question": "What is the most likely diagnosis?",
                    "options": {
                        "A": "glioma",
                        "B": "meningioma",
                        "C": "ependymoma",
                        "D": "metastasis",
                        "E": NOTA,
                    },
                    "answer": "B",
                },
                {
                    "question_type": "size",
                    "question": "What is the lesion size category?",
                    "options": {
                        "A": "Small",
                        "B": "Medium",
                        "C": "Large",
                        "D": "No lesion",
                        "E": NOTA,
                    },
                    "answer": "C",
                },
                {
                    "question_type": "shape",
                    "question": "What is the predominant shape of the lesion?",
                    "options": {
                        "A": "Round/Oval",
                        "B": "Lobulated",
                        "C": "Irregular",
                        "D": "Linear",
                        "E": NOTA,
                    },
                    "answer": "E",
                    "meta_trap": True,
                    "meta_original_answer": "Ring-like",
                },
            ],
        },
        {
            "id": 3,
            "image_path": "healthy/c.png",
            "vqa_pairs": [
                {
                    "question_type": "diagnosis",
                    "question": "Is this brain MRI normal or abnormal?",
                    "options": {"A": "Healthy", "B": "Abnormal"},
                    "answer": "A",
                },
                {
                    "question_type": "modality",
                    "question": "What MRI sequence is shown?",
                    "options": {"A": "T2", "B": "T1", "C": "FLAIR", "D": "T1_CE", "E": NOTA},
                    "answer": "A",
                },
            ],
        },
    ]


def open_records() -> list[dict]:
    return [
        {
            "id": 1,
            "image_path": "glioma/a.png",
            "qa_pairs": [
                {
                    "question_id": "1_q1",
                    "question_type": "Detail",
                    "question": "Describe the margins of the glioma lesion.",
                    "reference_answer": "The glioma lesion is lobulated with irregular margins.",
                    "eval_keywords": ["lobulated", "irregular", "glioma"],
                },
                {
                    "question_id": "1_q2",
                    "question_type": "Location",
                    "question": "Where is the lesion located?",
                    "reference_answer": "It lies in the left frontal region, without enhancement.",
                    "eval_keywords": ["left", "frontal", "enhancement"],
                },
            ],
        }
    ]


def write_images(root: Path) -> None:
    rng = np.random.default_rng(0)
    for rel in ("glioma/a.png", "meningioma/b.png", "healthy/c.png"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(path)


@pytest.fixture
def small_bench(tmp_path: Path) -> Path:
    """closed.json and open.json with their images, in tmp_path/bench."""
    root = tmp_path / "bench"
    root.mkdir()
    (root / "closed.json").write_text(json.dumps(closed_records()))
    (root / "open.json").write_text(json.dumps(open_records()))
    write_images(root)
    return root
