"""PNG plots of a scored benchmark (matplotlib, headless Agg backend).

- accuracy by question type, one bar per model, with bootstrap 95% intervals;
- trap recall against over-refusal, one point per model (top-left is best; the diagonal is a
  model that refuses at the same rate whether or not the answer was removed);
- the diagnosis confusion matrix of one model (rows: true diagnosis, columns: its answer);
- for open benchmarks: keyword recall, token F1 and ROUGE-L by question type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only, whatever the user's default backend is

import matplotlib.pyplot as plt
import numpy as np


def _bars(ax: Any, groups: list[str], series: dict[str, tuple[list[float], list[Any]]]) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (name, (values, cis)) in enumerate(series.items()):
        heights = [v if v is not None else 0.0 for v in values]
        lower = [h - ci[0] if ci else 0.0 for h, ci in zip(heights, cis, strict=True)]
        upper = [ci[1] - h if ci else 0.0 for h, ci in zip(heights, cis, strict=True)]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            heights,
            width,
            label=name,
            yerr=[lower, upper],
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def accuracy_by_type(models: dict[str, dict[str, Any]], path: Path) -> Path:
    types = sorted({t for m in models.values() for t in m["all"].get("accuracy_by_type", {})})
    series = {}
    for name, entry in models.items():
        by, ci = entry["all"]["accuracy_by_type"], entry["all"]["accuracy_by_type_ci"]
        series[name] = ([by.get(t) for t in types], [ci.get(t) for t in types])
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(types) + 3), 4))
    _bars(ax, types, series)
    ax.set_ylabel("accuracy (95% bootstrap interval)")
    ax.set_title("Accuracy by question type")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def trap_vs_refusal(models: dict[str, dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="refuses blindly")
    for name, entry in models.items():
        m = entry["all"]
        x, y = m.get("over_refusal"), m.get("trap_recall")
        if x is None or y is None:
            continue
        xerr = _err(x, m.get("over_refusal_ci"))
        yerr = _err(y, m.get("trap_recall_ci"))
        marker = "s" if entry.get("baseline") else "o"
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, capsize=2, label=name)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("over-refusal (answerable questions refused)")
    ax.set_ylabel("trap recall (traps refused)")
    ax.set_title("Trap recall against over-refusal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _err(value: float, ci: list[float] | None) -> Any:
    if not ci:
        return None
    return [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def confusion_matrix(name: str, confusion: dict[str, Any], path: Path) -> Path:
    rows, cols = confusion["true"], confusion["predicted"]
    matrix = np.array(confusion["matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(cols) + 3), max(4, 0.45 * len(rows) + 2)))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if matrix[i, j]:
                colour = "white" if shares[i, j] > 0.6 else "black"
                ax.text(
                    j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7, color=colour
                )
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("answered")
    ax.set_ylabel("true diagnosis")
    ax.set_title(f"Diagnosis confusion: {name}", fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the row")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def open_by_type(models: dict[str, dict[str, Any]], path: Path) -> Path:
    metrics = ("keyword_recall", "token_f1", "rouge_l")
    types = sorted({t for m in models.values() for t in m["all"].get("keyword_recall_by_type", {})})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, metric in zip(axes, metrics, strict=True):
        series = {
            name: (
                [e["all"].get(metric + "_by_type", {}).get(t) for t in types],
                [None] * len(types),
            )
            for name, e in models.items()
        }
        _bars(ax, types, series)
        ax.set_title(metric.replace("_", " "))
        if ax is not axes[-1]:
            ax.get_legend().remove()
    fig.suptitle("Open questions by type")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
