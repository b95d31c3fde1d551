"""Chance-corrected agreement of the describers, per field, before critique (README "Agreement").

The items are a run's annotated slices, the raters its describer slots, the values each
describer's own vote (see :mod:`neuroonco.review.votes`); a null value is a missing vote, so a
describer that leaves ``margins`` open is not counted as disagreeing. Per field:

- Krippendorff's alpha (nominal; any number of raters; missing votes allowed: items with fewer
  than two votes cannot be paired and drop out), and Fleiss' kappa over the items every rater
  voted on, each with its number of items; undefined (None) with one rater or one value only;
- the mask-derived fields (size, shape, spread, location, laterality, and lesion_found where a
  mask exists) are facts, not opinions: each describer's accuracy against the measurement
  (over the slices it voted on) and coverage (share of measured slices it voted on);
- against the gold set (latest reviews), when one exists: each describer's and the consensus's
  accuracy and Cohen's kappa, over the reviewed slices (an abstention is the value "none");
- the fusion rules replayed on the stored votes through :func:`neuroonco.agents.fusion.fuse`:
  coverage (share of slices with a vote where the rule gives a value) and accuracy (against the
  gold value, else the measurement, where either exists).

The statistics libraries (krippendorff, scikit-learn) are imported inside the functions:
`neuroonco agreement` is the only command that pays for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from neuroonco.agents.evidence import mask_state
from neuroonco.agents.fusion import RULES, fuse
from neuroonco.review.votes import VOTED_FIELDS, RunVotes, SliceVotes
from neuroonco.schemas.findings import MASK_FIELDS

MEASURED_FIELDS: tuple[str, ...] = ("lesion_found", *MASK_FIELDS)
NONE = "none"  # an abstention, when compared with a gold value


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def krippendorff_alpha(matrix: Sequence[Sequence[Any]]) -> tuple[float | None, int]:
    """Nominal alpha of ``matrix`` (raters x items, None = missing) and the pairable item count."""
    import numpy as np

    n_items = len(matrix[0]) if matrix else 0
    pairable = [j for j in range(n_items) if sum(row[j] is not None for row in matrix) >= 2]
    values = {row[j] for row in matrix for j in pairable if row[j] is not None}
    if len(matrix) < 2 or len(values) < 2:
        # One rater, or one value among the pairable votes: expected disagreement is 0.
        return None, len(pairable)
    import krippendorff

    codes = {v: i for i, v in enumerate(sorted(values, key=str))}
    data = np.array(
        [[np.nan if row[j] is None else codes[row[j]] for j in pairable] for row in matrix],
        dtype=float,
    )
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    return _clean(alpha), len(pairable)


def fleiss_kappa(matrix: Sequence[Sequence[Any]]) -> tuple[float | None, int]:
    """Fleiss' kappa over the items every rater voted on, and their count."""
    n_items = len(matrix[0]) if matrix else 0
    full = [j for j in range(n_items) if all(row[j] is not None for row in matrix)]
    values = {row[j] for row in matrix for j in full}
    if len(matrix) < 2 or not full or len(values) < 2:
        return None, len(full)
    import numpy as np

    # Fleiss (1971), as statsmodels.stats.inter_rater.fleiss_kappa computes it (the tests check
    # the two agree); written out because statsmodels would bring pandas into every command:
    # sqlite_utils imports pandas whenever it is installed.
    codes = {v: i for i, v in enumerate(sorted(values, key=str))}
    counts = np.zeros((len(full), len(codes)))
    for row in matrix:
        for k, j in enumerate(full):
            counts[k, codes[row[j]]] += 1
    raters = len(matrix)
    p_cat = counts.sum(axis=0) / counts.sum()
    p_item = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar, p_e = p_item.mean(), (p_cat**2).sum()
    return _clean((p_bar - p_e) / (1 - p_e)), len(full)


def cohen_kappa(gold: Sequence[Any], other: Sequence[Any]) -> float | None:
    """Cohen's kappa of two aligned label lists (None when undefined: one label only)."""
    if not gold or len(set(gold) | set(other)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    labels = sorted(set(map(str, gold)) | set(map(str, other)))
    return _clean(cohen_kappa_score([str(g) for g in gold], [str(o) for o in other], labels=labels))


def measured_value(sv: SliceVotes, name: str) -> Any:
    """The mask's value of field ``name`` for the slice (None when the mask does not say)."""
    state = mask_state(sv.measurements, sv.has_mask)
    if name == "lesion_found":
        return {"lesion": True, "empty": False}.get(state)
    return (sv.measurements or {}).get(name) if state == "lesion" else None


def _fused_values(sv: SliceVotes, raters: list[str], rule: str) -> dict[str, Any]:
    votes = [sv.findings.get(r) for r in raters]
    consensus = fuse(
        votes,
        rule=rule,  # type: ignore[arg-type]
        measurements=sv.measurements,
        modality=sv.modality,
        has_mask=sv.has_mask,
    )
    out = {}
    for name in VOTED_FIELDS:
        value = getattr(consensus, name, None)
        out[name] = getattr(value, "value", value)
    return out


@dataclass
class Result:
    """One number of the report (a row of the ``review_agreement`` table)."""

    field: str
    kind: str  # opinion | measured
    metric: str
    rater: str  # panel | <describer slot> | consensus | rule:<name>
    value: float | None
    n: int


@dataclass
class AgreementReport:
    run_id: str
    which: str
    raters: list[str]
    n_slices: int
    n_gold: int
    results: list[Result] = field(default_factory=list)

    def get(self, field: str, metric: str, rater: str = "panel") -> Result | None:
        for r in self.results:
            if (r.field, r.metric, r.rater) == (field, metric, rater):
                return r
        return None


def _kind(name: str) -> str:
    return "measured" if name in MASK_FIELDS else "opinion"


def compute(votes: RunVotes, gold: dict[str, dict[str, Any]] | None = None) -> AgreementReport:
    """Every number of the report for one run's votes (``gold``: slice -> field -> value)."""
    gold = gold or {}
    raters = votes.raters
    slices = votes.slices
    report = AgreementReport(
        run_id=votes.run_id,
        which=votes.which,
        raters=raters,
        n_slices=len(slices),
        n_gold=sum(1 for sv in slices if sv.slice_id in gold),
    )
    add = report.results.append
    table = {sv.slice_id: {r: sv.values(r) for r in raters} for sv in slices}
    fused = {
        rule: {sv.slice_id: _fused_values(sv, raters, rule) for sv in slices} for rule in RULES
    }
    for name in VOTED_FIELDS:
        kind = _kind(name)
        matrix = [[table[sv.slice_id][r][name] for sv in slices] for r in raters]
        alpha, n_alpha = krippendorff_alpha(matrix) if slices else (None, 0)
        add(Result(name, kind, "krippendorff_alpha", "panel", alpha, n_alpha))
        kappa, n_kappa = fleiss_kappa(matrix) if slices else (None, 0)
        add(Result(name, kind, "fleiss_kappa", "panel", kappa, n_kappa))
        if name in MEASURED_FIELDS:
            measured = {sv.slice_id: measured_value(sv, name) for sv in slices}
            known = [sid for sid, v in measured.items() if v is not None]
            for r in raters:
                voted = [sid for sid in known if table[sid][r][name] is not None]
                right = sum(table[sid][r][name] == measured[sid] for sid in voted)
                add(
                    Result(
                        name,
                        kind,
                        "accuracy_vs_measurement",
                        r,
                        right / len(voted) if voted else None,
                        len(voted),
                    )
                )
                add(
                    Result(
                        name,
                        kind,
                        "coverage_vs_measurement",
                        r,
                        len(voted) / len(known) if known else None,
                        len(known),
                    )
                )
        reviewed = [sv for sv in slices if name in gold.get(sv.slice_id, {})]
        if reviewed:
            truth = [_label(gold[sv.slice_id][name]) for sv in reviewed]
            rows = {r: [_label(table[sv.slice_id][r][name]) for sv in reviewed] for r in raters}
            rows["consensus"] = [_label((sv.consensus or {}).get(name)) for sv in reviewed]
            for who, said in rows.items():
                acc = sum(a == b for a, b in zip(truth, said, strict=True)) / len(truth)
                add(Result(name, kind, "accuracy_vs_gold", who, acc, len(truth)))
                add(
                    Result(
                        name, kind, "cohen_kappa_vs_gold", who, cohen_kappa(truth, said), len(truth)
                    )
                )
        for rule in RULES:
            with_vote = [
                sv for sv in slices if any(table[sv.slice_id][r][name] is not None for r in raters)
            ]
            covered = [sv for sv in with_vote if fused[rule][sv.slice_id][name] is not None]
            add(
                Result(
                    name,
                    kind,
                    "rule_coverage",
                    f"rule:{rule}",
                    len(covered) / len(with_vote) if with_vote else None,
                    len(with_vote),
                )
            )
            judged = []
            for sv in covered:
                ref = _reference(sv, name, gold)
                if ref is not None:
                    judged.append(fused[rule][sv.slice_id][name] == ref)
            add(
                Result(
                    name,
                    kind,
                    "rule_accuracy",
                    f"rule:{rule}",
                    sum(judged) / len(judged) if judged else None,
                    len(judged),
                )
            )
    return report


def _label(value: Any) -> str:
    return NONE if value is None else str(value).lower()


def _reference(sv: SliceVotes, name: str, gold: dict[str, dict[str, Any]]) -> Any:
    reviewed = gold.get(sv.slice_id, {})
    if name in reviewed:
        return reviewed[name]
    return measured_value(sv, name) if name in MEASURED_FIELDS else None


def slice_agreement(sv: SliceVotes, raters: list[str]) -> dict[str, float]:
    """Per field, the share of the panel giving the most common answer (null counts as an
    answer here, so a lone dissenting abstention shows); fields nobody voted on are left out."""
    out = {}
    for name in VOTED_FIELDS:
        said = [sv.values(r)[name] for r in raters]
        if all(v is None for v in said):
            continue
        top = max(said.count(v) for v in said)
        out[name] = top / len(said)
    return out
