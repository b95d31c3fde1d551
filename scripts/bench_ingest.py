"""Benchmark: `neuroonco ingest` against a plain nibabel + Pillow script on BraTS-size cases.

    python scripts/bench_ingest.py [--cases N] [--workdir DIR] [--repeats R] [--against PYTHON]

Writes 2N BraTS 2021 cases (240x240x155, four sequences and a seg, from seeded phantoms) as two
trees, N and 2N cases (the second reuses the first's files through hard links), then times, each
in a fresh subprocess, (a) :func:`neuroonco.ingest.ingest` with default options and (b) a plain
script doing the same reads and writes: load the five volumes with nibabel, take the axial slice
of largest tumour area, window each sequence to its 0.5/99.5 percentiles and write four image
PNGs and one mask PNG with Pillow. Wall time includes interpreter start and imports; `work` is
the time inside the subprocess after imports; `cpu` its user + system CPU time (all threads),
which other load on the machine barely moves. Peak RSS is the child's own maximum (os.wait4).
The order of (a) and (b) alternates between repeats; the page cache is warmed first.

``--against PYTHON`` also times (a) under another interpreter, e.g. the venv of an older
checkout (``git worktree add ../old REV``, a venv there with ``pip install -e . --no-deps`` over
this one's packages): "earlier" in the table, so a regression shows in the same run, on the same
trees and the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

KINDS = ("ours", "baseline")


# --- the two contenders (run inside the child process) ----------------------------------------


def run_ours(src: Path, out: Path) -> int:
    from neuroonco.ingest import ingest

    return ingest([src], out / "neuroonco.db").slices


def run_baseline(src: Path, out: Path) -> int:
    import nibabel as nib
    import numpy as np
    from PIL import Image

    written = 0
    for case in sorted(p for p in src.iterdir() if p.is_dir()):
        seg = np.asanyarray(nib.load(next(case.glob("*_seg.nii.gz"))).dataobj)
        z = int(np.count_nonzero(seg, axis=(0, 1)).argmax())  # nibabel arrays are (x, y, z)
        mask = seg[:, :, z].astype(np.uint8)
        mask[mask == 4] = 3
        Image.fromarray(np.ascontiguousarray(mask.T)).save(out / f"{case.name}_seg.png")
        for seq in ("t1", "t1ce", "t2", "flair"):
            vol = nib.load(next(case.glob(f"*_{seq}.nii.gz"))).get_fdata(dtype=np.float32)
            lo, hi = np.percentile(vol[vol != 0], [0.5, 99.5])
            img = np.clip((vol[:, :, z] - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
            Image.fromarray(np.ascontiguousarray(img.T)).save(out / f"{case.name}_{seq}.png")
            written += 1
    return written


def _worker(kind: str, src: str, out: str) -> None:
    # Import first, so `work` is the job alone (wall time still counts the imports).
    if kind == "ours":
        import neuroonco.ingest  # noqa: F401
    else:
        import nibabel  # noqa: F401
        import PIL.Image  # noqa: F401
    start = time.perf_counter()
    n = (run_ours if kind == "ours" else run_baseline)(Path(src), Path(out))
    print(json.dumps({"work_s": time.perf_counter() - start, "slices": n}))


# --- setup ------------------------------------------------------------------------------------


def _write_case(args: tuple[Path, int]) -> Path:
    from neuroonco.tools.phantom import make_phantom
    from neuroonco.tools.sample_sources import write_brats2021_case

    root, i = args
    ph = make_phantom(seed=1000 + i, tumour_side=("left", "right")[i % 2])
    return write_brats2021_case(root, f"{i:05d}", ph)[0].parent


def build_trees(workdir: Path, n: int) -> tuple[Path, Path]:
    """``workdir/brats_<n>`` and ``workdir/brats_<2n>``; the larger hard-links the smaller's
    files, so both contenders read identical bytes and the setup writes 2N cases, not 3N."""
    small, large = workdir / f"brats_{n}", workdir / f"brats_{2 * n}"
    for tree in (small, large):
        shutil.rmtree(tree, ignore_errors=True)
    jobs = [(small, i) for i in range(n)] + [(large, i) for i in range(n, 2 * n)]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        folders = list(pool.map(_write_case, jobs))
    for folder in folders[:n]:
        (large / folder.name).mkdir(parents=True)
        for f in folder.iterdir():
            os.link(f, large / folder.name / f.name)
    return small, large


def warm_cache(*trees: Path) -> None:
    for tree in trees:
        for f in tree.rglob("*.nii.gz"):
            f.read_bytes()


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    cases: int
    repeat: int
    wall_s: float
    work_s: float
    cpu_s: float
    peak_mb: float
    slices: int


def measure(
    kind: str, src: Path, out: Path, cases: int, repeat: int, python: str | None = None
) -> Result:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    worker = "ours" if kind == "earlier" else kind
    cmd = [python or sys.executable, __file__, "--worker", worker, str(src), str(out)]
    # Output goes to files, not pipes: os.wait4 reaps the child, so nothing may wait on it.
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0), se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed ({proc.returncode}):\n{stderr}")
    report = json.loads(stdout.strip().splitlines()[-1])
    peak_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    cpu = usage.ru_utime + usage.ru_stime  # all threads; insensitive to other load
    return Result(kind, cases, repeat, wall, report["work_s"], cpu, peak_mb, report["slices"])


def _pick(results: list[Result], kind: str, cases: int, attr: str) -> list[float]:
    return [getattr(r, attr) for r in results if (r.kind, r.cases) == (kind, cases)]


def report(results: list[Result], sizes: tuple[int, int]) -> None:
    head = f"{'impl':<9}{'cases':>6}{'rep':>5}{'wall s':>9}{'work s':>9}{'cpu s':>9}"
    print(f"\n{head}{'peak MB':>9}{'PNGs':>6}")
    for r in results:
        print(
            f"{r.kind:<9}{r.cases:>6}{r.repeat:>5}{r.wall_s:>9.2f}{r.work_s:>9.2f}"
            f"{r.cpu_s:>9.2f}{r.peak_mb:>9.0f}{r.slices:>6}"
        )
    print("\n(PNGs: image slices written; both write one mask PNG per position)")
    for cases in sizes:
        ours, base = (statistics.mean(_pick(results, k, cases, "wall_s")) for k in KINDS)
        best = min(_pick(results, "baseline", cases, "wall_s")) / min(
            _pick(results, "ours", cases, "wall_s")
        )
        cpu = statistics.mean(_pick(results, "baseline", cases, "cpu_s")) / statistics.mean(
            _pick(results, "ours", cases, "cpu_s")
        )
        print(
            f"{cases:>3} cases: ours {ours:.2f} s, baseline {base:.2f} s (mean wall); "
            f"ratio (baseline/ours) = {base / ours:.2f} (best of repeats: {best:.2f}, "
            f"CPU time: {cpu:.2f})"
        )
        if _pick(results, "earlier", cases, "wall_s"):
            then, then_cpu, now_cpu = (
                statistics.mean(_pick(results, k, cases, a))
                for k, a in (("earlier", "wall_s"), ("earlier", "cpu_s"), ("ours", "cpu_s"))
            )
            print(
                f"{'':>10}earlier {then:.2f} s, CPU {then_cpu:.2f} s; ours CPU {now_cpu:.2f} s: "
                f"earlier/ours = {then / ours:.2f} (wall), {then_cpu / now_cpu:.2f} (CPU)"
            )
    for kind in sorted({r.kind for r in results}, key=lambda k: (k not in KINDS, k)):
        peaks = ", ".join(
            f"{c} cases {max(_pick(results, kind, c, 'peak_mb')):.0f} MB" for c in sizes
        )
        print(f"peak RSS {kind}: {peaks}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=8, help="N (the run also times 2N)")
    parser.add_argument("--workdir", type=Path, help="where to write (default: a temp folder)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the workdir's trees")
    parser.add_argument(
        "--against", metavar="PYTHON", help="also time `ours` under this interpreter ('earlier')"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    small, large = build_trees(workdir, args.cases)
    print(f"wrote {2 * args.cases} BraTS-size cases in {time.perf_counter() - start:.0f} s")
    warm_cache(small, large)
    sizes = (args.cases, 2 * args.cases)
    results = []
    for tree, cases in ((small, sizes[0]), (large, sizes[1])):
        for repeat in range(args.repeats):
            kinds = (*KINDS, "earlier") if args.against else KINDS
            order = kinds if repeat % 2 == 0 else kinds[::-1]
            for kind in order:
                out = workdir / f"out_{kind}"
                python = args.against if kind == "earlier" else None
                results.append(measure(kind, tree, out, cases, repeat, python))
                r = results[-1]
                print(
                    f"  {kind:<8} {cases:>3} cases, repeat {repeat}: {r.wall_s:.2f} s", flush=True
                )
    report(results, sizes)
    if not args.keep:
        for path in (small, large, *(workdir / f"out_{k}" for k in (*KINDS, "earlier"))):
            shutil.rmtree(path, ignore_errors=True)
        if args.workdir is None:
            workdir.rmdir()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        _worker(*sys.argv[2:])
    else:
        main()
