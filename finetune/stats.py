"""What an instruction set holds: ``stats.json`` and a Markdown summary beside the data.

Counts by task, kind, style, diagnosis and split; the fill rate of each consensus field over the
slices used (MM-NeuroOnco's AIR, annotation information rate); traps per task. Built as records
stream past, so it costs no second pass and no memory per slice.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from operator import itemgetter
from pathlib import Path
from typing import Any

from neuroonco.finetune.questions import CLOSED_FIELDS
from neuroonco.finetune.records import Instruction
from neuroonco.finetune.splits import SPLITS

# (task, kind, style, split, diagnosis, trap flag) of an Instruction, by position.
_COMBO = itemgetter(3, 4, 9, 8, 17, 11)


class StatsCollector:
    def __init__(self) -> None:
        self.by: dict[str, Counter] = defaultdict(Counter)
        self.traps: Counter = Counter()
        self.closed: Counter = Counter()
        self.filled: Counter = Counter()
        self.slices = 0
        self.slices_by_split: Counter = Counter()
        self.subjects_by_split: dict[str, set[str]] = defaultdict(set)
        self._combos: Counter = Counter()

    def add_slice(self, values: dict[str, str], split: str, subject: str) -> None:
        self.slices += 1
        self.slices_by_split[split] += 1
        self.subjects_by_split[split].add(subject)
        self.filled.update(values.keys())

    def add(self, item: Instruction) -> None:
        self.add_slice_instructions([item])

    def add_slice_instructions(self, items: list[Instruction]) -> None:
        # One count per combination while streaming; the tables are summed from it at the end.
        self._combos.update(map(_COMBO, items))

    def _tally(self) -> None:
        for (task, kind, style, split, diagnosis, trap), n in self._combos.items():
            self.by["task"][task] += n
            self.by["task_kind"][f"{task}/{kind}"] += n
            self.by["kind"][kind] += n
            self.by["style"][style] += n
            self.by["split"][split] += n
            self.by["diagnosis"][diagnosis or "unknown"] += n
            if kind == "closed":
                self.closed[task] += n
                self.traps[task] += n if trap else 0
        self._combos = Counter()

    def result(self, **context: Any) -> dict[str, Any]:
        self._tally()
        n = max(self.slices, 1)
        total_traps = sum(self.traps.values())
        eligible = sum(self.closed.values())
        return {
            "version": 1,
            **context,
            "n_instructions": sum(self.by["kind"].values()),
            "n_slices": self.slices,
            "n_subjects": sum(len(s) for s in self.subjects_by_split.values()),
            "slices_by_split": {s: self.slices_by_split.get(s, 0) for s in SPLITS},
            "subjects_by_split": {s: len(self.subjects_by_split.get(s, ())) for s in SPLITS},
            "by_task": dict(sorted(self.by["task"].items())),
            "by_task_kind": dict(sorted(self.by["task_kind"].items())),
            "by_kind": dict(sorted(self.by["kind"].items())),
            "by_style": dict(sorted(self.by["style"].items())),
            "by_diagnosis": dict(sorted(self.by["diagnosis"].items())),
            "by_split": {s: self.by["split"].get(s, 0) for s in SPLITS},
            "fill_rate": {f: round(self.filled.get(f, 0) / n, 4) for f in CLOSED_FIELDS},
            "air": round(
                sum(self.filled.get(f, 0) for f in CLOSED_FIELDS) / (n * len(CLOSED_FIELDS)), 4
            ),
            "traps": total_traps,
            "traps_by_task": {
                task: {
                    "traps": self.traps[task],
                    "closed": c,
                    "rate": round(self.traps[task] / c, 4),
                }
                for task, c in sorted(self.closed.items())
            },
            "trap_share_of_closed": round(total_traps / max(eligible, 1), 4),
        }


def _table(title: str, counts: dict[str, Any], header: str = "count") -> list[str]:
    lines = [f"### {title}", "", f"| {title.split()[-1]} | {header} |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    return [*lines, ""]


def summary_markdown(stats: dict[str, Any]) -> str:
    lines = [
        "# Instruction set summary",
        "",
        f"- run: `{stats['run_id']}` (config `{stats['config_hash']}`), seed {stats['seed']}",
        f"- {stats['n_instructions']} instructions from {stats['n_slices']} slices of "
        f"{stats['n_subjects']} subjects; formats: {', '.join(stats['formats'])}",
        f"- traps: {stats['traps']} ({stats['trap_share_of_closed']:.1%} of closed questions, "
        f"rate {stats['trap_rate']}); AIR (mean field fill rate): {stats['air']:.1%}",
        "",
    ]
    lines += _table("Instructions by task", stats["by_task_kind"])
    lines += _table("Instructions by kind", stats["by_kind"])
    lines += _table("Instructions by style", stats["by_style"])
    lines += _table("Instructions by diagnosis", stats["by_diagnosis"])
    lines += _table("Instructions by split", stats["by_split"])
    lines += _table("Slices by split", stats["slices_by_split"])
    lines += _table("Subjects by split", stats["subjects_by_split"])
    lines += _table(
        "Fill rate by field", {k: f"{v:.1%}" for k, v in stats["fill_rate"].items()}, "filled"
    )
    traps = {k: f"{v['traps']} / {v['closed']}" for k, v in stats["traps_by_task"].items()}
    lines += _table("Traps by task", traps, "traps / closed")
    return "\n".join(lines)


def write_stats(folder: Path, stats: dict[str, Any]) -> None:
    (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (folder / "summary.md").write_text(summary_markdown(stats), encoding="utf-8")
