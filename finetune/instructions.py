"""`neuroonco instructions`: the instruction set from one configuration's consensus.

Streams the selected slices once: each slice's instructions are generated, given the split of its
subject, written to every requested export and to the store's `instructions` table, and counted.
The output folder is built beside its final place and renamed into it only when everything is
written, so a killed export leaves no half-written dataset; the store's rows are committed in the
same step (one transaction, rolled back on any failure).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroonco import store
from neuroonco.errors import ConfigError
from neuroonco.finetune import annotated
from neuroonco.finetune.annotated import NothingToExport, RunChoice
from neuroonco.finetune.exports import FORMATS, make_writers
from neuroonco.finetune.questions import GenerationOptions, generate, vocabulary_values
from neuroonco.finetune.records import ROW_OF
from neuroonco.finetune.rowsink import RowSink
from neuroonco.finetune.splits import SplitPlan, SplitRatios, plan_splits
from neuroonco.finetune.stats import StatsCollector, write_stats
from neuroonco.schemas.lookalikes import LOOKALIKES_VERSION


@dataclass
class InstructionOptions:
    db: Path
    out: Path
    formats: list[str] = field(default_factory=lambda: ["llamafactory"])
    run: str | None = None
    include: list[str] = field(default_factory=list)
    keep_source_splits: bool = False
    force: bool = False
    seed: int = 0
    trap_rate: float = 0.19
    cot_rate: float = 0.5
    ratios: SplitRatios = field(default_factory=SplitRatios)
    paraphrase: str | None = None

    @property
    def statuses(self) -> tuple[str, ...]:
        return ("accepted", *(s for s in self.include if s != "accepted"))


def check_options(opts: InstructionOptions) -> None:
    """One-line errors for options, before anything is read or written."""
    unknown = [f for f in opts.formats if f not in FORMATS]
    if unknown or not opts.formats:
        raise ConfigError(
            f"unknown format {', '.join(unknown) or '(none)'}; use one or more of: "
            + ", ".join(FORMATS)
        )
    bad = [s for s in opts.include if s not in annotated.STATUSES]
    if bad:
        raise ConfigError(f"--include {bad[0]!r}: only needs_review can be added to accepted")
    if not 0 <= opts.trap_rate <= 1:
        raise ConfigError(f"--trap-rate {opts.trap_rate} must be between 0 and 1")
    if opts.out.exists() and not opts.force:
        raise ConfigError(f"{opts.out} exists: pass --force to replace it, or choose another --out")
    if not Path(opts.db).is_file():
        raise NothingToExport(
            f"no store at {opts.db}: run `neuroonco annotate SRC --db {opts.db}` first"
        )
    if "hf" in opts.formats:
        from neuroonco.finetune.hf_export import require_datasets

        require_datasets()


@contextmanager
def atomic_dir(out: Path, force: bool) -> Iterator[Path]:
    """A fresh folder that becomes ``out`` only if the block finishes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        if not force:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ConfigError(f"{out} appeared meanwhile: pass --force to replace it")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(out: Path) -> None:
    """The hidden folders of exports to ``out`` that were killed (their process is gone)."""
    for path in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, pid = path.name.rpartition("-")
        if not kind.endswith((".partial", ".old")) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # gone: what it left is no one's
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive (another user's): leave it
            pass


def _slices_with_splits(db, choice: RunChoice, opts: InstructionOptions, plan: SplitPlan):
    for item in annotated.iter_slices(db, choice, opts.statuses):
        yield item, plan.split_of(item.subject_id)


def build_instructions(
    opts: InstructionOptions,
    on_slice: Callable[[int, int], None] | None = None,
    paraphraser: Any | None = None,
) -> dict[str, Any]:
    """Write the instruction set; returns its stats (also written as stats.json)."""
    check_options(opts)
    gen = GenerationOptions(seed=opts.seed, trap_rate=opts.trap_rate, cot_rate=opts.cot_rate)
    db = store.connect(opts.db)
    try:
        choice = annotated.choose_run(db, opts.run, str(opts.db))
        total = annotated.check_selection(db, choice, opts.statuses, str(opts.db))
        plan = plan_splits(
            annotated.iter_split_keys(db, choice, opts.statuses),
            seed=opts.seed,
            ratios=opts.ratios,
            keep_source_splits=opts.keep_source_splits,
        )
        stats = StatsCollector()
        with atomic_dir(opts.out, opts.force) as tmp:
            sink = RowSink(
                Path(opts.db),
                "select id from runs where config_hash = ? union select ?",
                [choice.config_hash, choice.run_id],
            )
            ok = False
            writers: list = []
            try:
                writers = make_writers(
                    opts.formats, tmp, Path(opts.db).parent, place=sink.place_images
                )
                _stream(
                    db, choice, opts, plan, gen, writers, stats, sink, on_slice, total, paraphraser
                )
                for writer in writers:
                    writer.close()
                result = stats.result(
                    run_id=choice.run_id,
                    config_hash=choice.config_hash,
                    statuses=list(opts.statuses),
                    seed=opts.seed,
                    trap_rate=opts.trap_rate,
                    formats=list(opts.formats),
                    keep_source_splits=opts.keep_source_splits,
                    lookalikes_version=LOOKALIKES_VERSION,
                    units_by_split=dict(plan.units),
                    paraphrase=paraphraser.summary() if paraphraser is not None else None,
                )
                if result["n_instructions"] == 0:
                    raise NothingToExport(
                        f"run {choice.run_id}: the selected annotations hold no field to ask "
                        "about; nothing written"
                    )
                write_stats(tmp, result)
                if "hf" in opts.formats:
                    from neuroonco.finetune.hf_export import write_card

                    write_card(tmp / "hf", result)
                ok = True
            finally:
                for writer in writers:
                    writer.release()
                sink.finish(commit=ok)
    finally:
        db.close()
    return result


def _stream(db, choice, opts, plan, gen, writers, stats, sink, on_slice, total, paraphraser):
    batch: list[tuple] = []
    for done, (item, split) in enumerate(_slices_with_splits(db, choice, opts, plan)):
        values = vocabulary_values(item.findings)
        stats.add_slice(values, split, item.subject_id)
        made = generate(item, gen, split=split, values=values)
        if paraphraser is not None:
            made = [paraphraser.apply(i, item) if i.kind == "open" else i for i in made]
        for writer in writers:
            writer.write_slice(made)
        stats.add_slice_instructions(made)
        batch += map(ROW_OF, made)
        if len(batch) >= 4000:
            sink.put(batch)
            batch = []
        if on_slice is not None:
            on_slice(done + 1, total)
    sink.put(batch)
