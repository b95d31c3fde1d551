"""What `bench score` writes: metrics.json, per-question results, report.md and plots/.

OUT/metrics.json              every metric of every model (see benchmark/score.py)
OUT/results/<model>.jsonl     one line per question: what was read and whether it was right
OUT/report.md                 leaderboard, per-type and per-diagnosis tables, plots
OUT/plots/*.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neuroonco.benchmark import plots
from neuroonco.benchmark.files import Bench

MAX_CONFUSION_PLOTS = 6


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _ci(ci: Any) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _slug(name: str) -> str:
    from neuroonco.benchmark.score import slug

    return slug(name)


def _closed_sections(metrics: dict[str, Any], audit: dict[str, Any] | None) -> list[str]:
    models = metrics["models"]
    lines = ["## Leaderboard (closed questions)", ""]
    header = [
        "model",
        "accuracy [95% CI]",
        "answerable acc.",
        "trap recall",
        "over-refusal",
        "balanced acc.",
        "eff. reliability",
        "rejection prec.",
        "parse failures",
    ]
    rows = []
    for row in metrics["leaderboard"]:
        label = row["model"] + (" *(baseline)*" if row["baseline"] else "")
        rows.append(
            [
                label,
                _pct(row["accuracy"]) + _ci(row.get("accuracy_ci")),
                *(
                    _pct(row.get(k))
                    for k in (
                        "answerable_accuracy",
                        "trap_recall",
                        "over_refusal",
                        "balanced_accuracy",
                    )
                ),
                "n/a"
                if row.get("effective_reliability") is None
                else f"{row['effective_reliability']:+.3f}",
                _pct(row.get("rejection_precision")),
                _pct(row.get("parse_failure_rate")),
            ]
        )
    lines += _table(header, rows)
    lines += [
        "",
        "Percentages; effective reliability is the mean of +1 right, 0 refused, -1 "
        "otherwise. Unreadable responses, abstentions, errors and missing predictions count "
        "as wrong (never a random guess).",
        "",
    ]
    if audit is not None:
        lines += _audit_section(metrics, audit, "accuracy")
    types = sorted({t for e in models.values() for t in e["all"]["accuracy_by_type"]})
    lines += ["## Accuracy by question type", ""]
    rows = [
        [name + (" *(baseline)*" if e["baseline"] else "")]
        + [
            _pct(e["all"]["accuracy_by_type"].get(t)) + _ci(e["all"]["accuracy_by_type_ci"].get(t))
            for t in types
        ]
        for name, e in models.items()
    ]
    first = next(iter(models.values()))["all"]["n_by_type"]
    lines += _table(["model", *(f"{t} (n={first.get(t, 0)})" for t in types)], rows)
    lines += [
        "",
        "![accuracy by type](plots/accuracy_by_type.png)",
        "",
        "![trap recall against over-refusal](plots/trap_vs_refusal.png)",
        "",
    ]
    diagnoses = sorted({d for e in models.values() for d in e["all"]["accuracy_by_diagnosis"]})
    lines += ["## Accuracy by diagnosis (all questions of a record)", ""]
    rows = [
        [name] + [_pct(e["all"]["accuracy_by_diagnosis"].get(d)) for d in diagnoses]
        for name, e in models.items()
    ]
    lines += _table(["model", *diagnoses], rows)
    lines += ["", "## How responses were read", ""]
    for name, e in models.items():
        if e["baseline"]:
            continue
        m = e["all"]
        lines.append(
            f"- **{name}**: statuses {m['status_counts']}; rules {m['rule_counts']}; "
            f"abstentions {_pct(m['abstention_rate'])}%, errors {_pct(m['error_rate'])}%, "
            f"missing {m['missing']}."
        )
        if "circular_accuracy" in m:
            lines.append(
                f"  CircularEval accuracy (every rotation right): {_pct(m['circular_accuracy'])}%."
            )
        if "with_judge" in m:
            j = m["with_judge"]
            lines.append(
                f"  With the LLM judge {j['judge']} on the {j['asked']} unreadable "
                f"responses: {j['rescued']} read, {j['still_failed']} still wrong; "
                f"accuracy {_pct(j['accuracy'])}% (strict: {_pct(m['accuracy'])}%)."
            )
        lines.append(f"  ![confusion](plots/confusion_{_slug(name)}.png)")
    return lines


def _audit_section(metrics: dict[str, Any], audit: dict[str, Any], key: str) -> list[str]:
    lines = [
        "## Sound questions only (audit)",
        "",
        f"{audit['excluded']} questions excluded as unsound by {audit['path']} "
        f"({audit['n_sound']} left); findings: "
        + (", ".join(f"{k}: {v}" for k, v in audit["by_kind"].items()) or "none")
        + ".",
        "",
    ]
    rows = []
    for name, e in metrics["models"].items():
        rows.append(
            [
                name,
                _pct(e["all"].get(key)) + _ci(e["all"].get(key + "_ci")),
                _pct(e["sound"].get(key)) + _ci(e["sound"].get(key + "_ci")),
            ]
        )
    lines += _table(["model", f"{key} (all)", f"{key} (sound)"], rows)
    return [*lines, ""]


def _open_sections(metrics: dict[str, Any], audit: dict[str, Any] | None) -> list[str]:
    lines = ["## Leaderboard (open questions)", ""]
    keys = ("keyword_recall", "keyword_recall_unleaked", "token_f1", "rouge_l", "rubric")
    rows = []
    for row in metrics["leaderboard"]:
        label = row["model"] + (" *(baseline)*" if row["baseline"] else "")
        rows.append([label] + [_pct(row.get(k)) for k in keys])
    lines += _table(
        [
            "model",
            "keyword recall",
            "… without leaked keywords",
            "token F1",
            "ROUGE-L",
            "rubric judge",
        ],
        rows,
    )
    leak = metrics.get("keyword_leak", {})
    lines += [
        "",
        f'Keyword recall ignores negated mentions ("not lobulated" does not find '
        f"*lobulated*). {leak.get('leaked')} of {leak.get('keywords')} reference keywords "
        f"({_pct(leak.get('share'))}%) already appear in their question "
        f"({leak.get('questions_with_leak')} questions): a model can copy them without "
        "looking at the image.",
        "",
        "![open by type](plots/open_by_type.png)",
        "",
    ]
    if audit is not None:
        lines += _audit_section(metrics, audit, "keyword_recall")
    return lines


def write_outputs(
    bench: Bench,
    metrics: dict[str, Any],
    results: dict[str, list[Any]],
    models: list[Any],
    out: Path,
    audit: dict[str, Any] | None,
) -> None:
    """metrics.json, results/*.jsonl, plots/*.png and report.md under `out`."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, rows in results.items():
        with (out / "results" / f"{_slug(name)}.jsonl").open("w", encoding="utf-8") as handle:
            for r in rows:
                handle.write(json.dumps(r.as_row(), ensure_ascii=False) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    entries = metrics["models"]
    if bench.kind == "closed":
        plots.accuracy_by_type(entries, out / "plots" / "accuracy_by_type.png")
        plots.trap_vs_refusal(entries, out / "plots" / "trap_vs_refusal.png")
        drawn = 0
        for m in models:
            if drawn < MAX_CONFUSION_PLOTS and not m.baseline:
                confusion = entries[m.name]["all"]["confusion_diagnosis"]
                plots.confusion_matrix(
                    m.name, confusion, out / "plots" / f"confusion_{_slug(m.name)}.png"
                )
                drawn += 1
        body = _closed_sections(metrics, audit)
        n_traps = sum(q.trap for q in bench.closed)
        intro = f"{len(bench.questions)} closed questions, {n_traps} of them traps"
    else:
        plots.open_by_type(entries, out / "plots" / "open_by_type.png")
        body = _open_sections(metrics, audit)
        intro = f"{len(bench.questions)} open questions"
    head = [
        f"# Benchmark report: {bench.path.name}",
        "",
        f"{intro}; {len(models)} models "
        f"(baselines included). Intervals: percentile bootstrap, "
        f"{metrics.get('bootstrap', {}).get('resamples', '')} resamples.",
        "",
    ]
    (out / "report.md").write_text("\n".join(head + body) + "\n", encoding="utf-8")
