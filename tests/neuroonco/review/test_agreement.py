"""Agreement on hand-made runs: alphas and kappas checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from neuroonco.review import agreement, gold
from neuroonco.review.votes import load_votes
from tests.neuroonco.review.synthetic import RUN, lesion_measurements, make_run

A, B = "well_circumscribed", "ill_defined"
RA, RB, RC = "0:builtin", "1:openai:gpt-4o-mini", "2:ollama:qwen"


def three_raters(tmp_path):
    """3 raters x 4 items on margins (C misses item 4), size measured small everywhere."""
    m = lesion_measurements(size="small")

    def vote(margins, size=None):
        out = {"lesion_found": True, "margins": margins}
        if size:
            out["size"] = size
        return out

    slices = {
        "s1": {"votes": {RA: vote(A, "small"), RB: vote(A, "small"), RC: vote(A)}},
        "s2": {"votes": {RA: vote(A, "small"), RB: vote(A, "medium"), RC: vote(B)}},
        "s3": {"votes": {RA: vote(B, "small"), RB: vote(B, "small"), RC: vote(B)}},
        "s4": {"votes": {RA: vote(A, "small"), RB: vote(B, "small"), RC: vote(None)}},
    }
    for spec in slices.values():
        spec["measurements"] = m
    return make_run(tmp_path / "s.db", slices)


def test_alpha_and_fleiss_match_hand_computation(tmp_path):
    db = three_raters(tmp_path)
    report = agreement.compute(load_votes(db, RUN))
    # Coincidences (each ordered pair within an item weighs 1/(m_u - 1)):
    #   s1 a,a,a -> o_aa += 3; s2 a,a,b -> o_aa += 1, o_ab += 1, o_ba += 1; s3 -> o_bb += 3;
    #   s4 a,b -> o_ab += 1, o_ba += 1.  n = 11, n_a = 6, n_b = 5.
    #   D_o = 4/11, D_e = 2*6*5/(11*10) = 6/11, alpha = 1 - D_o/D_e = 1/3.
    alpha = report.get("margins", "krippendorff_alpha")
    assert alpha.value == pytest.approx(1 / 3)
    assert alpha.n == 4
    # Fleiss over the 3 items all raters voted on: P_i = 1, 1/3, 1 -> P = 7/9;
    #   p_a = 5/9, p_b = 4/9 -> P_e = 41/81; kappa = (7/9 - 41/81)/(1 - 41/81) = 22/40.
    fleiss = report.get("margins", "fleiss_kappa")
    assert fleiss.value == pytest.approx(0.55)
    assert fleiss.n == 3


def test_mask_fields_are_scored_against_the_measurement(tmp_path):
    db = three_raters(tmp_path)
    report = agreement.compute(load_votes(db, RUN))
    assert report.get("size", "accuracy_vs_measurement", RA).value == 1.0
    assert report.get("size", "accuracy_vs_measurement", RB).value == pytest.approx(3 / 4)
    cov_c = report.get("size", "coverage_vs_measurement", RC)
    assert cov_c.value == 0.0 and cov_c.n == 4
    assert report.get("size", "accuracy_vs_measurement", RC).value is None
    assert report.get("size", "krippendorff_alpha").kind == "measured"
    assert report.get("margins", "accuracy_vs_measurement", RA) is None  # not a mask fact


def test_cohen_kappa_and_accuracy_against_gold(tmp_path):
    db = three_raters(tmp_path)
    for sid, value in {"s1": A, "s2": A, "s3": B, "s4": B}.items():
        gold.record(db, sid, "margins", "edit", value=value, reviewer="ana", run_id=RUN)
    report = agreement.compute(load_votes(db, RUN), gold.gold_values(db))
    # Rater A says a,a,b,a against gold a,a,b,b: p_o = 3/4; p_e = 1/2*3/4 + 1/2*1/4 = 1/2;
    #   kappa = (3/4 - 1/2)/(1 - 1/2) = 1/2.
    assert report.get("margins", "cohen_kappa_vs_gold", RA).value == pytest.approx(0.5)
    assert report.get("margins", "accuracy_vs_gold", RA).value == pytest.approx(0.75)
    assert report.get("margins", "accuracy_vs_gold", RB).value == 1.0
    # C abstains on s4, which counts as the answer "none" against gold b.
    assert report.get("margins", "accuracy_vs_gold", RC).value == pytest.approx(0.5)
    # The stored consensus said nothing about margins: every reviewed item is a miss.
    assert report.get("margins", "accuracy_vs_gold", "consensus").value == 0.0
    assert report.n_gold == 4


def test_fusion_rules_replayed_on_the_stored_votes(tmp_path):
    db = three_raters(tmp_path)
    for sid, value in {"s1": A, "s2": A, "s3": B, "s4": B}.items():
        gold.record(db, sid, "margins", "edit", value=value, reviewer="ana", run_id=RUN)
    report = agreement.compute(load_votes(db, RUN), gold.gold_values(db))
    # unanimous: s1 a, s3 b; majority adds s2 (2 of 3 say a); s4 (a, b, -) has no majority.
    assert report.get("margins", "rule_coverage", "rule:unanimous").value == 0.5
    assert report.get("margins", "rule_coverage", "rule:majority").value == 0.75
    assert report.get("margins", "rule_accuracy", "rule:majority").value == 1.0
    assert report.get("margins", "rule_accuracy", "rule:majority").n == 3
    # seed rules settle the size dispute of s2 with the measurement: full coverage, all right.
    assert report.get("size", "rule_coverage", "rule:seed_rules").value == 1.0
    assert report.get("size", "rule_accuracy", "rule:seed_rules").value == 1.0
    assert report.get("size", "rule_coverage", "rule:unanimous").value == 0.75


def test_one_describer_or_one_value_is_undefined_not_perfect(tmp_path):
    db = make_run(
        tmp_path / "one.db",
        {f"s{i}": {"votes": {RA: {"lesion_found": True, "margins": A}}} for i in range(3)},
    )
    report = agreement.compute(load_votes(db, RUN))
    assert report.get("margins", "krippendorff_alpha").value is None
    assert report.get("margins", "fleiss_kappa").value is None
    assert agreement.krippendorff_alpha([["x", "x"], ["x", "x"]]) == (None, 2)


def test_perfect_disagreement_and_missing_votes():
    # Two raters always disagree on two values: D_o = 1, D_e = 2*2*2/(4*3) = 2/3 -> alpha = -1/2.
    alpha, n = agreement.krippendorff_alpha([["a", "b"], ["b", "a"]])
    assert alpha == pytest.approx(-0.5) and n == 2
    # An item with one vote cannot be paired and drops out.
    alpha, n = agreement.krippendorff_alpha([["a", "b", "a"], ["b", "a", None]])
    assert alpha == pytest.approx(-0.5) and n == 2


def test_first_and_last_round_votes(tmp_path):
    db = make_run(
        tmp_path / "r.db",
        {
            "s1": {
                "votes": {
                    RA: {"lesion_found": True, "margins": A},
                    RB: {"lesion_found": True, "margins": B},
                },
                "round2": {RB: {"lesion_found": True, "margins": A}},
            },
        },
    )
    first = load_votes(db, RUN, "first").slices[0]
    last = load_votes(db, RUN, "last").slices[0]
    assert first.values(RB)["margins"] == B
    assert last.values(RB)["margins"] == A
    assert last.values(RA)["margins"] == A  # no round 2 for A: its only vote


def test_failed_call_is_a_missing_vote(tmp_path):
    db = make_run(
        tmp_path / "f.db",
        {"s1": {"votes": {RA: {"lesion_found": True, "margins": A}, RB: None}}},
    )
    votes = load_votes(db, RUN)
    assert votes.raters == [RA, RB]
    assert votes.slices[0].findings[RB] is None
    assert votes.slices[0].values(RB)["margins"] is None


def test_fleiss_kappa_equals_statsmodels_on_random_panels():
    import numpy as np
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    rng = np.random.default_rng(0)
    for raters, items, cats in ((2, 30, 2), (3, 25, 3), (5, 40, 4)):
        codes = rng.integers(0, cats, size=(raters, items))
        matrix = [[f"v{c}" for c in row] for row in codes]
        ours, n = agreement.fleiss_kappa(matrix)
        table, _ = aggregate_raters(codes.T)
        assert n == items
        assert ours == pytest.approx(sm_fleiss(table, method="fleiss"))
