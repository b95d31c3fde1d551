"""The builtin backend: each role answers from the grounding, saying nothing unsupported."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from neuroonco.agents.prompts import render_prompt, validation_context
from neuroonco.agents.providers.base import ModelRequest, ModelResult
from neuroonco.agents.providers.builtin import BuiltinProvider
from neuroonco.schemas.agents import Consensus, Critique, DiagnosisOpinion
from neuroonco.schemas.findings import LESION_FIELDS, SliceFindings
from neuroonco.tools.measurements import intensity_stats, measure_mask

MODELS = {
    "describer": SliceFindings,
    "diagnostician": DiagnosisOpinion,
    "critic": Critique,
    "arbiter": Consensus,
}
MEASUREMENTS = {
    "area_fraction": 0.0174,
    "circularity": 0.41,
    "elongation": 1.8,
    "components": 1,
    "largest_component_ratio": 1.0,
    "centroid": [0.3, 0.5],
    "size": "medium",
    "shape": "irregular",
    "spread": "solitary",
    "location": "center_left",
    "laterality": "right",
    "laterality_source": "radiological_convention",
    "intensity": {
        "t2": {"signal_intensity": "hyperintense", "texture": "heterogeneous", "margins": None,
               "edema": "extensive", "enhancement": "ring"},
        "t1": {"signal_intensity": "hypointense"},
    },
}  # fmt: skip
LESION = {"modality": "t2", "label": "glioma", "measurements": MEASUREMENTS, "has_mask": True}


def request(role: str, grounding: dict) -> ModelRequest:
    system, prompt = render_prompt(role, grounding)
    return ModelRequest(
        role=role,
        system=system,
        prompt=prompt,
        response_model=MODELS[role],
        grounding=grounding,
        validation_context=validation_context(grounding),
    )


def ask(role: str, grounding: dict) -> ModelResult:
    return asyncio.run(BuiltinProvider().complete(request(role, grounding)))


def test_describer_reports_what_the_measurements_support() -> None:
    result = ask("describer", LESION)
    f = result.output
    assert isinstance(f, SliceFindings) and result.error is None
    assert f.lesion_found is True and f.modality.value == "t2"
    assert (f.size, f.shape, f.spread, f.location, f.laterality) == (
        "medium", "irregular", "solitary", "center_left", "right",
    )  # fmt: skip
    assert f.signal_intensity == "hyperintense" and f.texture == "heterogeneous"
    assert f.edema == "extensive"
    assert f.enhancement is None  # a ring hint on t2 is physics the schema forbids
    assert f.margins is None  # the hint could not tell
    assert "circularity 0.41 < 0.5" in f.rationale


def test_result_record_is_complete() -> None:
    result = ask("describer", LESION)
    assert result.spec == "builtin" and result.ok
    assert result.input_tokens == result.output_tokens == 0 and result.cost_usd == 0.0
    assert len(result.attempts) == 1 and result.attempts[0].outcome == "ok"
    assert json.loads(result.response) == result.output.model_dump(mode="json")
    assert result.attempts[0].response == result.response


@pytest.mark.parametrize(
    "grounding",
    [
        {"modality": "t1", "label": "no_tumor", "measurements": None, "has_mask": False},
        {"modality": "flair", "label": "glioma", "measurements": None, "has_mask": True},
        {"modality": "t2", "label": "notumor", "measurements": {"intensity": {"t2": {}}}},
        # What ingest stores for the empty mask of a tumour case's slice.
        {
            "modality": "t2",
            "label": "glioma",
            "measurements": {"area_fraction": 0.0, "components": 0, "lesion": False},
        },
    ],
    ids=["label-no-tumor", "empty-mask", "no-tumor-with-intensity", "ingest-empty-mask"],
)
def test_tumour_free_slice_has_no_lesion_fields(grounding: dict) -> None:
    f = ask("describer", grounding).output
    assert f.lesion_found is False
    assert all(getattr(f, name) is None for name in LESION_FIELDS)
    assert "no lesion" in f.rationale.lower()


def test_describer_without_mask_says_only_presence() -> None:
    f = ask("describer", {"modality": "t1ce", "label": "Meningioma", "has_mask": False}).output
    assert f.lesion_found is True and all(getattr(f, n) is None for n in LESION_FIELDS)
    unknown = ask("describer", {"modality": None, "label": None}).output
    assert unknown.lesion_found is None and "cannot be assessed" in unknown.rationale


def test_describer_skips_shape_of_a_box_mask() -> None:
    f = ask("describer", {**LESION, "mask_kind": "box"}).output
    assert f.shape is None and f.size == "medium"


def test_diagnostician_gives_the_label_with_reasoning() -> None:
    votes = [ask("describer", LESION).output.model_dump(mode="json")]
    opinion = ask("diagnostician", {**LESION, "votes": votes}).output
    assert opinion.diagnosis == "glioma" and opinion.confidence == 1.0
    assert not opinion.conflicts_with_source
    assert "Source label glioma" in opinion.reasoning and "medium" in opinion.reasoning
    none = ask("diagnostician", {**LESION, "label": None}).output
    assert none.diagnosis is None and "No source label" in none.reasoning


def test_diagnostician_flags_conflicts_with_the_label() -> None:
    lesion_on_healthy = ask("diagnostician", {**LESION, "label": "no_tumor"}).output
    assert lesion_on_healthy.conflicts_with_source and lesion_on_healthy.confidence == 0.5
    assert "no_tumor but the mask shows a lesion" in lesion_on_healthy.conflict_note
    empty = {"modality": "t2", "label": "glioma", "measurements": None, "has_mask": True}
    tumour_without_lesion = ask("diagnostician", empty).output
    assert tumour_without_lesion.conflicts_with_source
    assert "glioma but the mask shows no lesion" in tumour_without_lesion.conflict_note
    # Without a mask, the describers' majority is the evidence.
    said = [{"lesion_found": True}, {"lesion_found": True}]
    by_votes = ask("diagnostician", {"label": "no_tumor", "votes": said}).output
    assert by_votes.conflicts_with_source and "the describers" in by_votes.conflict_note


def test_critic_checks_the_findings_under_review() -> None:
    claimed = {"lesion_found": True, "modality": "t2", "shape": "round_oval"}
    critique = ask("critic", {**LESION, "findings": claimed}).output
    assert isinstance(critique, Critique) and critique.revise
    assert critique.verdicts["shape"].value == "irregular"
    clean = ask("critic", {**LESION, "findings": ask("describer", LESION).output}).output
    assert not clean.revise


def test_arbiter_fuses_the_votes() -> None:
    good = ask("describer", LESION).output.model_dump(mode="json")
    grounding = {**LESION, "votes": [good, {**good, "texture": "homogeneous"}, None]}
    grounding["diagnosis"] = ask("diagnostician", grounding).output.model_dump(mode="json")
    consensus = ask("arbiter", {**grounding, "rule": "unanimous"}).output
    assert isinstance(consensus, Consensus)
    assert consensus.texture is None and consensus.shape == "irregular"
    assert consensus.diagnosis == "glioma" and consensus.status == "accepted"
    assert consensus.findings_json()["lesion_found"] is True
    strict = ask("arbiter", {**grounding, "rule": "unanimous", "review_threshold": 0.99}).output
    assert strict.status == "needs_review"


def test_failures_come_back_as_results() -> None:
    bad_rule = ask("arbiter", {**LESION, "votes": [], "rule": "coin_toss"})
    assert bad_rule.output is None and "unknown fusion rule" in bad_rule.error
    assert bad_rule.attempts[0].outcome == "error"
    bad_findings = ask("critic", {**LESION, "findings": {"shape": "blob"}})
    assert bad_findings.attempts[0].outcome == "invalid_output"
    stranger = ModelRequest(role="judge", system="", prompt="", response_model=ModelResult)  # type: ignore[arg-type]
    assert "no builtin agent for role 'judge'" in BuiltinProvider().answer(stranger).error


def test_dispatch_by_response_model_when_the_role_is_unknown() -> None:
    req = request("describer", LESION)
    req.role = "describer-2"
    assert isinstance(BuiltinProvider().answer(req).output, SliceFindings)


def test_a_real_measured_mask_end_to_end() -> None:
    yy, xx = np.mgrid[:100, :100]
    mask = ((yy - 50) ** 2 + (xx - 20) ** 2 <= 10**2).astype(np.uint8)
    m = measure_mask(mask, orientation_known=True)
    f = ask("describer", {"modality": "flair", "label": "meningioma", "measurements": m}).output
    assert f.shape == "round_oval" and f.size == m["size"] and f.laterality == m["laterality"]
    assert f.location == "center_left"


def test_real_intensity_hints_end_to_end() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    brain = ((yy - 64) ** 2 + (xx - 64) ** 2 <= 60**2).astype(float)
    lesion = (yy - 50) ** 2 + (xx - 80) ** 2 <= 12**2
    image = brain * 100 + lesion * 120 + rng.normal(0, 2, brain.shape) * brain
    mask = lesion.astype(np.uint8)
    m = measure_mask(mask, orientation_known=False)
    m["intensity"] = intensity_stats({"flair": image}, mask)
    grounding = {"modality": "flair", "label": "glioma", "measurements": m, "has_mask": True}
    f = ask("describer", grounding).output
    assert f.signal_intensity == "hyperintense" and f.enhancement is None
    assert "lesion/normal mean ratio" in f.rationale
    wrong = {"lesion_found": True, "modality": "flair", "signal_intensity": "hypointense"}
    verdict = ask("critic", {**grounding, "findings": wrong}).output.verdicts["signal_intensity"]
    assert verdict.action == "downgrade" and verdict.value == "hyperintense"
    assert "hypointense claimed but the flair intensity measurements suggest hyperintense" in (
        verdict.reason
    )
    assert "lesion/normal mean ratio 2." in verdict.reason
