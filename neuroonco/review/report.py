"""The agreement report's three outputs: rows in ``review_agreement``, Markdown, and a PNG plot."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import sqlite_utils

from neuroonco import store
from neuroonco.agents.fusion import RULES
from neuroonco.review.agreement import AgreementReport
from neuroonco.review.votes import VOTED_FIELDS


def save(db: sqlite_utils.Database, report: AgreementReport) -> int:
    """Replace the stored results of (run, votes) with these; returns the number of rows."""
    stamp = store.now()
    rows = [
        {**asdict(r), "run_id": report.run_id, "votes": report.which, "created_at": stamp}
        for r in report.results
    ]
    with store.transaction(db):
        db.execute(
            "DELETE FROM review_agreement WHERE run_id = ? AND votes = ?",
            [report.run_id, report.which],
        )
        if rows:
            db["review_agreement"].insert_all(rows)
    return len(rows)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(report: AgreementReport, plot: Path | None = None) -> str:
    """The report as Markdown tables (one section per question the issue asks)."""
    g = report.get
    lines = [
        f"# Agreement report: run {report.run_id}",
        "",
        f"Votes: each describer's {'round-1' if report.which == 'first' else 'latest-round'} "
        f"output, before critique. Panel: {', '.join(report.raters) or '(no describer calls)'} "
        f"({len(report.raters)} raters); {report.n_slices} slices; {report.n_gold} reviewed.",
        "",
        "A null value is a missing vote. n/a: undefined (one rater, or a single value among the "
        "votes, or no items).",
        "",
        "## Agreement between the describers, per field",
        "",
        "| field | kind | Krippendorff's alpha | items | Fleiss' kappa | items |",
        "|---|---|---|---|---|---|",
    ]
    for name in VOTED_FIELDS:
        a, k = g(name, "krippendorff_alpha"), g(name, "fleiss_kappa")
        assert a is not None and k is not None
        lines.append(f"| {name} | {a.kind} | {_fmt(a.value)} | {a.n} | {_fmt(k.value)} | {k.n} |")
    lines += [
        "",
        "## Mask-derived fields: each describer against the measurement",
        "",
        "| field | describer | accuracy | voted | coverage | measured |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("lesion_found", "size", "shape", "spread", "location", "laterality"):
        for rater in report.raters:
            acc = g(name, "accuracy_vs_measurement", rater)
            cov = g(name, "coverage_vs_measurement", rater)
            if acc is None or cov is None:
                continue
            lines.append(
                f"| {name} | {rater} | {_fmt(acc.value)} | {acc.n} | {_fmt(cov.value)} | {cov.n} |"
            )
    lines += ["", "## Against the gold set (reviews)", ""]
    gold_rows = [r for r in report.results if r.metric == "accuracy_vs_gold"]
    if not gold_rows:
        lines.append("No reviewed slice in this run yet (`neuroonco review`).")
    else:
        lines += ["| field | who | accuracy | Cohen's kappa | items |", "|---|---|---|---|---|"]
        for r in gold_rows:
            kappa = g(r.field, "cohen_kappa_vs_gold", r.rater)
            lines.append(
                f"| {r.field} | {r.rater} | {_fmt(r.value)} | "
                f"{_fmt(kappa.value if kappa else None)} | {r.n} |"
            )
    lines += [
        "",
        "## Fusion rules replayed on the stored votes",
        "",
        "Coverage: share of slices with a vote where the rule gives a value. Accuracy: against "
        "the gold value, else the measurement (mask-derived fields), where one exists.",
        "",
        "| field | " + " | ".join(f"{rule} cov / acc (n)" for rule in RULES) + " |",
        "|---|" + "---|" * len(RULES),
    ]
    for name in VOTED_FIELDS:
        cells = []
        for rule in RULES:
            cov = g(name, "rule_coverage", f"rule:{rule}")
            acc = g(name, "rule_accuracy", f"rule:{rule}")
            assert cov is not None and acc is not None
            cells.append(f"{_fmt(cov.value)} / {_fmt(acc.value)} ({acc.n})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if plot is not None:
        lines += ["", f"![agreement]({plot.name})"]
    return "\n".join(lines) + "\n"


def plot(report: AgreementReport, path: Path) -> Path:
    """Alpha per field (left) and each rule's mean accuracy against coverage (right)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    alphas = [report.get(n, "krippendorff_alpha") for n in VOTED_FIELDS]
    heights = [a.value if a and a.value is not None else 0.0 for a in alphas]
    colours = ["tab:blue" if a and a.value is not None else "lightgrey" for a in alphas]
    left.bar(range(len(VOTED_FIELDS)), heights, color=colours)
    left.set_xticks(range(len(VOTED_FIELDS)), VOTED_FIELDS, rotation=60, ha="right")
    left.set_ylim(min(-0.1, *heights), 1.05)
    left.set_ylabel("Krippendorff's alpha (grey: undefined)")
    left.set_title("Describer agreement before critique")
    for rule in RULES:
        pts = []
        for n in VOTED_FIELDS:
            cov = report.get(n, "rule_coverage", f"rule:{rule}")
            acc = report.get(n, "rule_accuracy", f"rule:{rule}")
            if cov and acc and cov.value is not None and acc.value is not None:
                pts.append((cov.value, acc.value))
        if pts:
            right.scatter([p[0] for p in pts], [p[1] for p in pts], label=rule, alpha=0.7)
    right.set_xlim(-0.05, 1.05)
    right.set_ylim(-0.05, 1.05)
    right.set_xlabel("coverage")
    right.set_ylabel("accuracy (gold, else measurement)")
    right.set_title("Fusion rules, one point per field")
    if right.get_legend_handles_labels()[0]:
        right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write(report: AgreementReport, out_dir: Path) -> Path:
    """Write ``agreement_<run>.md`` and its PNG into ``out_dir``; returns the Markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"agreement_{report.run_id}_{report.which}"
    png = plot(report, out_dir / f"{stem}.png")
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(report, png), encoding="utf-8")
    return md
