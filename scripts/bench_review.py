"""What `annotate --review` costs: the all-builtin graph with and without the review pause.

    python scripts/bench_review.py [--slices N] [--repeats R] [--workdir DIR]

The sample tree is ingested once and copied into N unique slices (`_bench_util.expand_store`);
each repeat annotates a fresh copy without `--review` and one with it (in turn, so machine load
hits both alike), and prints CPU seconds per slice of each and their ratio. The builtin models
answer in microseconds, so this is the worst case: with real models, whose calls take seconds,
the checkpoint writes are a vanishing share. Also printed: how many slices paused and the size of
the checkpoint file (paused slices only; finished ones are dropped).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from _bench_util import cpu_s, expand_store, make_base_store


def one(base: Path, workdir: Path, n: int, review: bool, tag: str) -> tuple[float, int, int]:
    from neuroonco.graph.review import checkpoint_path
    from neuroonco.graph.runner import annotate

    db = workdir / f"{tag}.db"
    expand_store(base, db, n, tag)
    started = cpu_s()
    summary = annotate(db, review=review)
    spent = cpu_s() - started
    size = checkpoint_path(db).stat().st_size if checkpoint_path(db).exists() else 0
    return spent / max(summary.done, 1), summary.paused, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-review-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = make_base_store(workdir, small=True)
    plain, reviewed = [], []
    for r in range(args.repeats):
        plain.append(one(base, workdir, args.slices, False, f"plain{r}")[0])
        cpu, paused, size = one(base, workdir, args.slices, True, f"review{r}")
        reviewed.append(cpu)
    a, b = statistics.median(plain), statistics.median(reviewed)
    print(f"slices {args.slices}, repeats {args.repeats}")
    print(f"without --review: {1000 * a:.2f} ms CPU per slice")
    print(
        f"with --review:    {1000 * b:.2f} ms CPU per slice ({paused} paused, checkpoints {size} B)"
    )
    print(f"ratio review / plain: {b / a:.2f}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
