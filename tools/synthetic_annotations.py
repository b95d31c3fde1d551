"""A store of synthetic annotated slices, written straight into the tables, for scale.

Builds what an ingest + annotate run would leave (slices, one run, accepted and needs_review
annotations, some duplicates across subjects) without running either, so the instruction set can be
generated and benchmarked on 100,000 slices in seconds. Findings obey the vocabulary and physics
rules (enhancement only on t1ce, edema only on t2/flair, no lesion fields on tumour-free slices);
measurements agree with the mask-derived findings. Images are a few small phantom PNGs shared by
many slices.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from neuroonco import store
from neuroonco.schemas.vocabulary import FIELDS

_DIAGNOSES = ("glioma", "meningioma", "pituitary_tumor", "metastasis", "schwannoma", "no_tumor")
_SIZES = {"small": 0.006, "medium": 0.03, "large": 0.08}
_SHAPES = {"round_oval": 0.86, "lobulated": 0.65, "irregular": 0.4}


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    brain = ((yy - 32) ** 2 + (xx - 32) ** 2 < 28**2) * 120
    image = (brain + rng.normal(0, 10, (64, 64))).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _findings(rng: random.Random, diagnosis: str, modality: str) -> tuple[dict, dict]:
    if diagnosis == "no_tumor":
        findings = dict.fromkeys(FIELDS)
        findings.update(diagnosis=diagnosis, modality=modality, lesion_found=False)
        return findings, {"lesion": False, "area_fraction": 0.0, "components": 0}
    pick = {name: rng.choice([m.value for m in enum]) for name, enum in FIELDS.items()}
    findings = {**pick, "diagnosis": diagnosis, "modality": modality, "lesion_found": True}
    if modality != "t1ce":
        findings["enhancement"] = None
    if modality in ("t1", "t1ce"):
        findings["edema"] = None
    if rng.random() < 0.2:  # the panel left a field open
        findings[rng.choice(["margins", "texture", "signal_intensity"])] = None
    components = {"solitary": 1, "dominant_with_satellites": 2, "multifocal": 3}[pick["spread"]]
    measurements = {
        "lesion": True,
        "area_fraction": _SIZES[pick["size"]],
        "circularity": _SHAPES[pick["shape"]],
        "elongation": 1.2,
        "components": components,
        "largest_component_ratio": 1.0 if components == 1 else 0.8 if components == 2 else 0.4,
        "centroid": [round(rng.random(), 4), round(rng.random(), 4)],
        "size": pick["size"],
        "shape": pick["shape"],
        "spread": pick["spread"],
        "location": pick["location"],
        "laterality": pick["laterality"],
        "intensity": {modality: {"contrast_ratio": 1.4, "cv": 0.2, "edge_sharpness": 0.8}},
    }
    findings["rationale"] = "synthetic"
    return findings, measurements


def write_synthetic_store(
    db_path: Path,
    n_slices: int,
    *,
    seed: int = 0,
    slices_per_subject: int = 8,
    duplicate_rate: float = 0.01,
    review_rate: float = 0.05,
    n_images: int = 16,
) -> str:
    """Write ``n_slices`` annotated slices into a new store; returns the run id."""
    rng = random.Random(seed)
    db = store.connect(db_path)
    images = store.images_dir(db_path)
    images.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n_images):
        (images / f"synthetic_{i}.png").write_bytes(_png(i))
        names.append(f"{images.name}/synthetic_{i}.png")
    run_id, config_hash = f"synthetic-{seed}", f"cfg-synthetic-{seed}"
    db["runs"].insert(
        {"id": run_id, "started_at": store.now(), "config": "{}", "config_hash": config_hash}
    )
    slices, annotations = [], []
    previous: str | None = None
    subject_dx = ""
    for i in range(n_slices):
        subject = f"sub-{seed}-{i // slices_per_subject:07d}"
        if i % slices_per_subject == 0:
            subject_dx = rng.choice(_DIAGNOSES)
        modality = ("t1", "t1ce", "t2", "flair")[i % 4]
        findings, measurements = _findings(rng, subject_dx, modality)
        slice_id = f"s{seed}-{i:08d}"
        duplicate = previous if previous and rng.random() < duplicate_rate else None
        slices.append(
            {
                "id": slice_id,
                "dataset": "synthetic",
                "source_format": "synthetic",
                "source_path": f"synthetic/{i}.png",
                "subject_id": subject,
                "group_id": f"grp-{i // 4}",
                "modality": modality,
                "plane": "axial",
                "image_path": names[i % n_images],
                "label": subject_dx,
                "measurements": json.dumps(measurements),
                "content_hash": f"h{i}",
                "duplicate_of": duplicate,
                "created_at": store.now(),
            }
        )
        status = "needs_review" if rng.random() < review_rate else "accepted"
        annotations.append(
            {
                "slice_id": slice_id,
                "run_id": run_id,
                "status": status,
                "findings": json.dumps(findings),
                "agreement": 1.0,
                "rounds": 1,
                "config_hash": config_hash,
                "created_at": store.now(),
            }
        )
        # Duplicates point at a slice of an earlier subject, tying the two subjects together.
        if i % slices_per_subject == slices_per_subject - 1:
            previous = slice_id
        if len(slices) >= 5000:
            _flush(db, slices, annotations)
    _flush(db, slices, annotations)
    db.close()
    return run_id


def _flush(db, slices: list[dict], annotations: list[dict]) -> None:
    with store.transaction(db):
        db["slices"].insert_all(slices)
        db["annotations"].insert_all(annotations)
    slices.clear()
    annotations.clear()
