"""Instruction-set performance: generation + export against a plain json.dumps loop, and memory.

    python scripts/bench_instructions.py [--slices N] [--workdir DIR]

1. Two synthetic stores of annotated slices (N and N/10; `tools/synthetic_annotations.py`:
   accepted and needs_review annotations, duplicates across subjects, physics-clean findings).
2. Ours, in its own process: `build_instructions` with the llamafactory export (reading the
   store, splitting by subject, generating closed + open instructions, validating every record,
   writing JSONL, linking images, inserting the `instructions` rows), on both stores.
3. The baseline, in its own process, in the same run: a plain loop over the same records (read
   back from the `instructions` rows ours wrote, streamed) that writes each one with `json.dumps`
   to its split's JSONL file: the cost of writing the records at all. Its files are checked to be
   byte for byte ours' llamafactory files (after the timing), so it does the same writing.

Each runs ``--repeat`` times, alternating; the fastest run of each counts (a shared machine's
slow runs measure its neighbours). Prints wall and CPU seconds (user + system, all threads, and
the child process that writes the store's rows), their ratios (goal: ours at most 2x the
baseline) and peak RSS at both sizes (goal: flat: streamed).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(db: str, out: str) -> dict:
    from neuroonco.finetune.instructions import InstructionOptions, build_instructions

    wall, cpu, children = time.perf_counter(), _cpu(), _cpu(resource.RUSAGE_CHILDREN)
    stats = build_instructions(InstructionOptions(db=Path(db), out=Path(out), force=True))
    # The store writer is a child process (finetune/store_rows.py): its CPU is ours too.
    child_cpu = _cpu(resource.RUSAGE_CHILDREN) - children
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": _cpu() - cpu + child_cpu,
        "child_cpu_s": child_cpu,
        "records": stats["n_instructions"],
        "slices": stats["n_slices"],
        "peak_rss_mb": _peak_mb(),
    }


def child_baseline(db: str, out: str) -> dict:
    import sqlite3

    from neuroonco.finetune.templates import COT_PROMPT, LETTER_PROMPT

    wall, cpu = time.perf_counter(), _cpu()
    conn = sqlite3.connect(db)
    cursor = conn.execute(
        "select i.kind, i.style, i.split, i.question, i.options, i.response, i.slice_id"
        " from instructions i order by i.rowid"
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {s: (folder / f"{s}.jsonl").open("w", encoding="utf-8") for s in SPLITS}
    n = 0
    while rows := cursor.fetchmany(4096):
        for kind, style, split, question, options, response, slice_id in rows:
            prompt = question
            if kind == "closed":
                listing = "\n".join(f"{k}. {v}" for k, v in json.loads(options).items())
                ask = COT_PROMPT if style == "cot" else LETTER_PROMPT
                prompt = f"{question}\nOptions:\n{listing}\n{ask}"
            record = {
                "messages": [
                    {"role": "user", "content": "<image>" + prompt},
                    {"role": "assistant", "content": response},
                ],
                "images": [f"images/{slice_id}.png"],
            }
            files[split].write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    for handle in files.values():
        handle.close()
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": _cpu() - cpu,
        "records": n,
        "peak_rss_mb": _peak_mb(),
    }


def same_records(ours: Path, base: Path) -> bool:
    """Whether the baseline wrote ours' llamafactory files byte for byte (it must: same work)."""
    return all(
        (ours / "llamafactory" / f"{s}.jsonl").read_bytes() == (base / f"{s}.jsonl").read_bytes()
        for s in SPLITS
    )


def run_child(kind: str, db: Path, out: Path) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
        f"import bench_instructions as b; print(json.dumps(b.child_{kind}({str(db)!r}, "
        f"{str(out)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the fastest counts")
    args = parser.parse_args()
    from neuroonco.tools.synthetic_annotations import write_synthetic_store

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-instr-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    try:
        for n in (args.slices // 10, args.slices):
            folder = work / f"n{n}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            t0 = time.perf_counter()
            write_synthetic_store(folder / "store.db", n)
            print(f"synthetic store of {n} slices: {time.perf_counter() - t0:.1f} s", flush=True)
            # Alternate the two and keep each one's fastest run: on a shared machine the
            # slowest runs measure the neighbours, not the code.
            ours_runs, base_runs = [], []
            for _ in range(args.repeat):
                ours_runs.append(run_child("ours", folder / "store.db", folder / "out"))
                base_runs.append(run_child("baseline", folder / "store.db", folder / "base"))
            if not same_records(folder / "out", folder / "base"):
                raise SystemExit(f"N={n}: the baseline did not write the same records as ours")
            ours = min(ours_runs, key=lambda r: r["cpu_s"])
            ours["wall_s"] = min(r["wall_s"] for r in ours_runs)
            base = min(base_runs, key=lambda r: r["cpu_s"])
            base["wall_s"] = min(r["wall_s"] for r in base_runs)
            results[n] = (ours, base)
            print(
                f"N={n}: ours {ours['records']} records in {ours['wall_s']:.1f} s wall, "
                f"{ours['cpu_s']:.1f} s CPU ({ours['child_cpu_s']:.1f} of it the store writer's), "
                f"peak RSS {ours['peak_rss_mb']:.0f} MiB | "
                f"json.dumps loop {base['records']} records in {base['wall_s']:.1f} s wall, "
                f"{base['cpu_s']:.1f} s CPU | ratio wall {ours['wall_s'] / base['wall_s']:.2f}x, "
                f"CPU {ours['cpu_s'] / base['cpu_s']:.2f}x",
                flush=True,
            )
        small, large = (results[n][0] for n in sorted(results))
        print(
            f"memory: peak RSS {small['peak_rss_mb']:.0f} MiB at {small['slices']} slices, "
            f"{large['peak_rss_mb']:.0f} MiB at {large['slices']} slices "
            f"(x{large['peak_rss_mb'] / small['peak_rss_mb']:.2f} for x10 slices)"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
