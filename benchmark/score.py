"""`bench score`: prediction files -> per-question results, metrics.json, a report and plots.

Every prediction file is one model (named by its rows' `model` field, else the file name); the
three baselines are scored beside them from the questions themselves. The first file's metrics
are also written at the top level of metrics.json (the DESIGN.md contract: `n`, `accuracy`,
`accuracy_by_type`, `answerable_accuracy`, `trap_recall`, `over_refusal`, `parse_failure_rate`);
every model's are under `models`, and `leaderboard` ranks them.

With `--audit audit.json` (written by `bench audit`), every metric is computed twice: on all
questions (`all`) and on the sound ones (`sound`: those not listed in the audit's `unsound`),
and `audit` says how many were excluded and for which findings.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroonco.benchmark.baselines import KINDS, Baseline
from neuroonco.benchmark.extract import Extraction
from neuroonco.benchmark.files import Bench, ClosedQuestion
from neuroonco.benchmark.judge import Judge, choice_prompt, read_choice, read_score, rubric_prompt
from neuroonco.benchmark.metrics import circular_correct, closed_metrics, score_closed
from neuroonco.benchmark.open_metrics import open_metrics, score_open
from neuroonco.benchmark.runner import CACHE_NAME, read_predictions, row_key
from neuroonco.errors import ConfigError

LEADERBOARD_KEYS_CLOSED = (
    "accuracy",
    "answerable_accuracy",
    "trap_recall",
    "over_refusal",
    "balanced_accuracy",
    "effective_reliability",
    "rejection_precision",
    "parse_failure_rate",
)
LEADERBOARD_KEYS_OPEN = (
    "keyword_recall",
    "keyword_recall_unleaked",
    "token_f1",
    "rouge_l",
    "rubric",
)


@dataclass
class ScoreOptions:
    """Settings of one `bench score`."""

    resamples: int = 1000
    seed: int = 0
    judge: str | None = None  # choice-judge spec for unreadable closed responses
    rubric_judge: str | None = None  # rubric-judge spec for open answers
    audit: Path | None = None
    baselines: bool = True
    # Judges' cache; None: the one `bench run` keeps beside the (first) predictions file.
    cache_path: Path | None = None
    concurrency: int = 8


@dataclass
class Model:
    name: str
    predictions: dict[tuple[str, int], dict[str, Any]]
    baseline: bool = False
    source: str = ""


def load_model(path: Path) -> Model:
    """A predictions file as one model; the last line per question wins (resumed runs)."""
    if not path.exists():
        raise ConfigError(f"predictions file not found: {path}")
    rows = read_predictions(path)
    if not rows:
        raise ConfigError(f"{path}: no prediction lines (expected JSON lines with question_id)")
    predictions = {row_key(r): r for r in rows}
    names = Counter(str(r["model"]) for r in rows if r.get("model"))
    name = names.most_common(1)[0][0] if names else path.stem
    return Model(name, predictions, name.startswith("baseline:"), str(path))


def baseline_models(bench: Bench, seed: int) -> list[Model]:
    models = []
    for kind in KINDS:
        baseline = Baseline(kind, bench.questions, seed)
        predictions = {
            (q.question_id, 0): {"question_id": q.question_id, "response": baseline.respond_to(q)}
            for q in bench.questions
        }
        models.append(Model(baseline.spec, predictions, True, "computed"))
    return models


def read_audit(path: Path, bench: Bench) -> dict[str, Any]:
    """The audit's unsound question ids (only those of this benchmark) and counts per kind."""
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"audit file not found: {path} (write it with `bench audit`)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    unsound = audit.get("unsound") if isinstance(audit, dict) else None
    if not isinstance(unsound, dict):
        raise ConfigError(f"{path}: not an audit file (no 'unsound' mapping of question ids)")
    ids = {q.question_id for q in bench.questions}
    excluded = {qid: list(kinds) for qid, kinds in unsound.items() if qid in ids}
    by_kind = Counter(kind for kinds in excluded.values() for kind in set(kinds))
    return {
        "path": str(path),
        "excluded": len(excluded),
        "n_sound": len(ids) - len(excluded),
        "by_kind": dict(sorted(by_kind.items())),
        "not_in_bench": len(set(unsound) - ids),
        "ids": excluded,
    }


def _unique_names(models: list[Model]) -> None:
    seen: Counter[str] = Counter()
    for m in models:
        seen[m.name] += 1
        if seen[m.name] > 1:
            m.name = f"{m.name} ({Path(m.source).stem})"


class Scorer:
    """Scores a benchmark's models and keeps the per-question results for the report."""

    def __init__(self, bench: Bench, options: ScoreOptions, cache_path: Path) -> None:
        self.bench = bench
        self.options = options
        self.cache_path = options.cache_path or cache_path
        self.results: dict[str, list[Any]] = {}
        self.judge_calls = 0

    def _choice_judge(self, model: Model, questions: list[ClosedQuestion]) -> Any:
        """The judge's reading of every strictly unreadable response (asked in one batch)."""
        strict = score_closed(questions, model.predictions)
        by_id = {q.question_id: q for q in questions}
        prompts = {
            r.question_id: choice_prompt(by_id[r.question_id], r.response or "")
            for r in strict
            if r.status in ("ambiguous", "no_answer", "abstained")
        }
        judge = Judge(self.options.judge or "", self.cache_path, self.options.concurrency)
        replies = judge.ask(prompts, max_tokens=16)
        self.judge_calls += judge.calls

        def read(question: ClosedQuestion, _response: str) -> Extraction | None:
            if question.question_id not in replies:
                return None
            return read_choice(question, replies[question.question_id])

        return read, len(prompts)

    def _closed(self, model: Model, questions: list[ClosedQuestion]) -> dict[str, Any]:
        o = self.options
        results = score_closed(questions, model.predictions)
        metrics = closed_metrics(results, o.resamples, o.seed)
        if any(rot > 0 for _, rot in model.predictions):
            circular = [circular_correct(q, model.predictions) for q in questions]
            metrics["circular_accuracy"] = sum(circular) / len(circular) if circular else None
        if o.judge and not model.baseline:
            read, asked = self._choice_judge(model, questions)
            judged = score_closed(questions, model.predictions, judge=read)
            with_judge = closed_metrics(judged, o.resamples, o.seed)
            metrics["with_judge"] = {
                "judge": o.judge,
                "asked": asked,
                "rescued": with_judge["judged"],
                "still_failed": asked - with_judge["judged"],
                **{k: with_judge[k] for k in (*LEADERBOARD_KEYS_CLOSED, "accuracy_ci")},
            }
            results = judged
        self.results.setdefault(model.name, results)
        return metrics

    def _open(self, model: Model, questions: list[Any]) -> dict[str, Any]:
        results = score_open(questions, model.predictions)
        if self.options.rubric_judge and not model.baseline:
            by_id = {q.question_id: q for q in questions}
            prompts = {
                r.question_id: rubric_prompt(by_id[r.question_id], r.response or "")
                for r in results
                if r.status == "answered"
            }
            judge = Judge(self.options.rubric_judge, self.cache_path, self.options.concurrency)
            replies = judge.ask(prompts, max_tokens=16)
            self.judge_calls += judge.calls
            for r in results:
                r.rubric = read_score(replies.get(r.question_id)) if r.status == "answered" else 0.0
        self.results.setdefault(model.name, results)
        metrics = open_metrics(results, self.options.resamples, self.options.seed)
        if self.options.rubric_judge and not model.baseline:
            metrics["rubric_judge"] = self.options.rubric_judge
            metrics["rubric_unreadable"] = sum(1 for r in results if r.rubric is None)
        return metrics

    def metrics_for(self, model: Model, subset: set[str] | None = None) -> dict[str, Any]:
        questions = [q for q in self.bench.questions if subset is None or q.question_id in subset]
        if self.bench.kind == "closed":
            return self._closed(model, questions)  # type: ignore[arg-type]
        return self._open(model, questions)


def _leaderboard(entries: dict[str, dict[str, Any]], models: list[Model], kind: str) -> list[dict]:
    keys = LEADERBOARD_KEYS_CLOSED if kind == "closed" else LEADERBOARD_KEYS_OPEN
    rank_by = "accuracy" if kind == "closed" else "keyword_recall"
    rows = []
    for m in models:
        metrics = entries[m.name]["all"]
        row: dict[str, Any] = {"model": m.name, "baseline": m.baseline}
        row.update({k: metrics.get(k) for k in keys if k in metrics})
        row[rank_by + "_ci"] = metrics.get(rank_by + "_ci")
        if "sound" in entries[m.name]:
            row["sound_" + rank_by] = entries[m.name]["sound"].get(rank_by)
        rows.append(row)
    rows.sort(key=lambda r: (r.get(rank_by) is None, -(r.get(rank_by) or 0.0)))
    return rows


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def score_bench(
    bench: Bench, prediction_paths: list[Path], out: Path, options: ScoreOptions
) -> dict[str, Any]:
    """Score every predictions file; writes results, metrics.json, report.md and plots into out."""
    from neuroonco.benchmark.report import write_outputs

    if not prediction_paths:
        raise ConfigError("give at least one predictions file: --predictions PRED.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    models = [load_model(p) for p in prediction_paths]
    _unique_names(models)
    known = {q.question_id for q in bench.questions}
    for m in models:
        if not any(qid in known for qid, _ in m.predictions):
            raise ConfigError(
                f"{m.source}: none of its question ids is in {bench.path} "
                "(scored against the wrong benchmark file?)"
            )
    if options.baselines:
        names = {m.name for m in models}
        models += [b for b in baseline_models(bench, options.seed) if b.name not in names]
    audit = read_audit(options.audit, bench) if options.audit else None
    sound = known - set(audit["ids"]) if audit else None
    scorer = Scorer(bench, options, prediction_paths[0].parent / CACHE_NAME)
    entries: dict[str, dict[str, Any]] = {}
    for m in models:
        entries[m.name] = {"all": scorer.metrics_for(m), "baseline": m.baseline, "source": m.source}
        if sound is not None:
            entries[m.name]["sound"] = scorer.metrics_for(m, sound)
    primary = models[0].name
    metrics: dict[str, Any] = {
        **entries[primary]["all"],
        "version": 1,
        "bench": str(bench.path),
        "kind": bench.kind,
        "model": primary,
        "models": entries,
        "leaderboard": _leaderboard(entries, models, bench.kind),
        "judge_calls": scorer.judge_calls,
    }
    if audit is not None:
        metrics["sound"] = entries[primary]["sound"]
        metrics["audit"] = {k: v for k, v in audit.items() if k != "ids"}
    write_outputs(bench, metrics, scorer.results, models, out, audit)
    return metrics
