"""Annotation performance benchmark: pipe efficiency, CPU per model call, builtin overhead, memory.

    python scripts/bench_annotate.py [--slices N] [--quick] [--profile DIR] [--workdir DIR]

1. A loopback server speaking the OpenAI, Anthropic and Ollama APIs, answering after 1 s, runs
   in its own process. `annotate` with a mixed panel (describers `openai:bench-describer-a`,
   `openai:bench-describer-b` and `ollama:bench-vlm`, diagnostician `anthropic:bench-claude`,
   critic `openai:bench-critic`, builtin arbiter; one round, one image per call, concurrency
   32) runs in another over N unique slices: 7N model calls. Pipe efficiency is the ideal time
   (calls x latency / concurrency) over the time from the first request to the last answer,
   read from the run's `agent_calls` rows (sent at created_at - latency_ms, answered at
   created_at) and cross-checked against the server's own log of answer times.
2. Reference loops, each in its own process, make the same calls (model, system texts,
   prompts, captions, PNG files, response models; 32 at once): the goal's bare instructor loop
   (`instructor.from_openai(AsyncOpenAI(...))`, `instructor.from_anthropic(AsyncAnthropic(...))`,
   and for Ollama, which instructor has no native mode for, `ollama.AsyncClient.chat(format=...)`
   validated by the response model), then the raw SDKs with httpx and with aiohttp (the floor).
   CPU per call is a process's CPU (user + system) over its timed section divided by its model
   calls. Ours counts everything the run does (LangGraph, the fact policy, builtin arbiter,
   SQLite); every process warms up on a few calls first, so imports are not counted.
3. The all-builtin graph (default config): CPU per slice and slices/s, and peak RSS at two
   sizes plus RSS along the larger run, which must stay flat.

Stores are the sample tree ingested once, then many unique copies of its slices (see
`_bench_util.expand_store`). `--profile DIR` writes a CPU-time cProfile of every timed section
and prints the top functions (the timings then include the profiler's overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import pstats
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the helper module imports by name.
from _bench_util import (
    ServerProcess,
    cpu_s,
    expand_store,
    make_base_store,
    peak_rss_mb,
    profiled,
    reference_loop,
    reset_peak_rss,
    rss_mb,
    run_child,
    serve,
)

DESCRIBERS = ("openai:bench-describer-a", "openai:bench-describer-b", "ollama:bench-vlm")
DIAGNOSTICIAN, CRITIC = "anthropic:bench-claude", "openai:bench-critic"
CALLS_PER_SLICE = 2 * len(DESCRIBERS) + 1  # describers, a critic call each, the diagnostician
WARM_SLICES = 4
PIPE_GOAL, CPU_GOAL = 0.9, 1.0
FLAT_MIB = 8.0  # peak RSS may differ this much between sizes and still count as flat


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _config(mode: str):
    from neuroonco.graph.context import AnnotateConfig

    if mode == "builtin":
        return AnnotateConfig()
    # One round: the canned describer answer contradicts the measurements and would otherwise
    # be sent back, which makes the call count depend on the critic.
    return AnnotateConfig(
        describers=list(DESCRIBERS),
        diagnostician=DIAGNOSTICIAN,
        critic=CRITIC,
        max_rounds=1,
        group_images=False,
    )


def child_annotate(a: dict[str, Any]) -> dict[str, Any]:
    """Child: warm up on a few slices, then one timed run over ``a['slices']`` slices."""
    from neuroonco.graph.runner import Runner

    base = Path(a["base_db"])
    warm, db = base.with_name(f"warm-{a['tag']}.db"), base.with_name(f"{a['tag']}.db")
    expand_store(base, warm, WARM_SLICES, "w")
    expand_store(base, db, a["slices"], a["tag"])
    config = _config(a["mode"])
    asyncio.run(Runner(warm, config, concurrency=a["concurrency"]).run())

    marks: list[tuple[int, float]] = []
    step = max(1, a["slices"] // 10)

    def on_progress(summary: Any) -> None:
        if summary.done % step == 0:
            marks.append((summary.done, round(rss_mb(), 1)))

    runner = Runner(db, config, concurrency=a["concurrency"])
    reset_peak_rss()  # the peak covers the run only, not building its store
    start_rss, c0, w0 = rss_mb(), cpu_s(), time.perf_counter()
    with profiled(a.get("profile")):
        summary = asyncio.run(runner.run(on_progress))
    cpu, wall = cpu_s() - c0, time.perf_counter() - w0
    out = {
        "done": summary.done,
        "by_status": summary.by_status,
        "cpu_s": cpu,
        "wall_s": wall,
        "start_rss_mb": round(start_rss, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_marks": marks,
    }
    return out | _call_stats(db, runner.run_id)


def _call_stats(db: Path, run_id: str) -> dict[str, Any]:
    """Model calls of the run by model and role, their time window, and the calls list."""
    import sqlite3

    conn = sqlite3.connect(db)
    rows = conn.execute(
        "select a.model, a.role, a.round, a.cached, a.attempts, a.created_at, a.latency_ms,"
        " a.prompt, s.modality, s.image_path from agent_calls a join slices s on s.id = a.slice_id"
        " where a.run_id = ?",
        [run_id],
    ).fetchall()
    conn.close()
    counts: dict[str, int] = {}
    for model, role, *_ in rows:
        counts[f"{model} {role}"] = counts.get(f"{model} {role}", 0) + 1
    paid = [r for r in rows if r[0] != "builtin"]
    out: dict[str, Any] = {
        "counts": counts,
        "max_round": max((r[2] for r in rows), default=0),
        "model_calls": sum(r[4] for r in paid),
        "cached_model_calls": sum(r[3] for r in paid),
    }
    if paid:
        out["first_sent"] = min(_stamp(r[5]) - r[6] / 1000 for r in paid)
        out["last_answered"] = max(_stamp(r[5]) for r in paid)
        out["calls"] = [
            {"model": r[0], "role": r[1], "prompt": r[7], "modality": r[8], "image": r[9]}
            for r in paid
        ]
    return out


def _server_window(log: dict[str, Any], latency: float, since: float) -> tuple[int, float]:
    """(answers, first arrival to last answer) from the server's log, after ``since``."""
    times = [t for t in log["answered"] if t - latency >= since - 0.05]
    return len(times), (max(times) - min(times) + latency) if times else 0.0


def _top(path: Path, n: int = 14) -> str:
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue().split("ncalls", 1)[-1]


REFERENCES = {  # name: (kind, http transport); the first is the goal's bare loop
    "bare instructor": ("instructor", "httpx"),
    "raw SDK": ("raw", "httpx"),
    "raw SDK + aiohttp": ("raw", "aiohttp"),
}


def bench_calls(args: argparse.Namespace, base_db: Path) -> None:
    """Our run and the reference loops against one server process; pipe and CPU ratios."""
    conc, lat, prof = args.concurrency, args.latency, args.profile
    server = ServerProcess(lat)
    env = {
        "OPENAI_BASE_URL": server.url + "/v1",
        "OPENAI_API_KEY": "no-key",
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "no-key",
        "OLLAMA_HOST": server.url,
    }
    refs: dict[str, dict[str, Any]] = {}
    try:
        job = {"base_db": str(base_db), "slices": args.slices, "mode": "api", "tag": "api"}
        job |= {"concurrency": conc, "profile": prof and str(Path(prof) / "ours.prof")}
        ours = run_child("annotate", job, env)
        ours_log = server.take()
        calls_file = base_db.with_name("calls.json")
        calls_file.write_text(json.dumps(ours.pop("calls")))
        for i, (name, (kind, http)) in enumerate(REFERENCES.items()):
            if i and args.quick:
                break
            job = {"calls_file": str(calls_file), "base_dir": str(base_db.parent)}
            job |= {"url": server.url, "concurrency": conc, "kind": kind, "http": http}
            job["profile"] = prof and str(Path(prof) / f"{kind}-{http}.prof")
            refs[name] = run_child("reference", job)
            refs[name]["window"] = _server_window(server.take(), lat, refs[name]["t0"])[1]
    finally:
        server.close()
    n = ours["model_calls"]
    ideal = n * lat / conc
    window = ours["last_answered"] - ours["first_sent"]
    served, server_window = _server_window(ours_log, lat, ours["first_sent"])
    print(f"\n== model calls: {ours['done']} slices, {n} calls, {lat:g} s latency, conc {conc} ==")
    print(f"calls by model/role: {ours['counts']}; max round {ours['max_round']}")
    print(f"cached model calls: {ours['cached_model_calls']}; statuses {ours['by_status']}")
    expected = {f"{spec} describer": ours["done"] for spec in DESCRIBERS}
    expected[f"{DIAGNOSTICIAN} diagnostician"] = ours["done"]
    expected[f"{CRITIC} critic"] = len(DESCRIBERS) * ours["done"]
    clean = ours["max_round"] == 1 and not ours["cached_model_calls"]
    clean = clean and n == CALLS_PER_SLICE * ours["done"]
    clean = clean and all(ours["counts"].get(k) == v for k, v in expected.items())
    print(
        f"check ({CALLS_PER_SLICE} calls per slice: 3 describers, 3 critic, 1 diagnostician; "
        "round 1, none cached): "
        f"{'ok' if clean else 'UNEXPECTED CALLS, numbers below are not comparable'}"
    )
    print(f"server: {served} answers, max in flight {ours_log['max_in_flight']}")
    print(
        f"ideal {ideal:.2f} s; first request to last answer {window:.2f} s "
        f"(server {server_window:.2f} s); run wall {ours['wall_s']:.2f} s"
    )
    eff = ideal / window
    verdict = "met" if eff >= PIPE_GOAL else "MISSED"
    print(
        f"PIPE EFFICIENCY {eff:.3f} (server-side {ideal / server_window:.3f}, whole run "
        f"{ideal / ours['wall_s']:.3f}) goal >= {PIPE_GOAL}: {verdict}"
    )
    ours_ms = 1000 * ours["cpu_s"] / n
    print(f"CPU per model call, ours: {ours_ms:.2f} ms ({ours['cpu_s']:.2f} s / {n})")
    for name, r in refs.items():
        ms = 1000 * r["cpu_s"] / r["model_calls"]
        print(
            f"  {name:<18} {ms:5.2f} ms ({r['cpu_s']:.2f} s / {r['model_calls']}), ours/it "
            f"{ours_ms / ms:.2f}, its pipe efficiency {ideal / r['window']:.3f}"
        )
    ratio = ours_ms / (1000 * refs["bare instructor"]["cpu_s"] / n)
    verdict = "met" if ratio <= CPU_GOAL else "MISSED"
    print(f"CPU RATIO ours / bare instructor {ratio:.2f} goal <= {CPU_GOAL}: {verdict}")
    print(f"server CPU (its own process, not counted): {ours_log['cpu_s']:.2f} s cumulative")
    if prof:
        for path in sorted(Path(prof).glob("*.prof")):
            if not path.name.startswith("builtin"):
                print(f"\n-- {path.stem}, top by own CPU time --" + _top(path))


def bench_builtin(args: argparse.Namespace, base_db: Path) -> None:
    """All-builtin runs: CPU per slice and throughput, then RSS at two sizes."""
    print(f"\n== builtin graph (default config, concurrency {args.builtin_concurrency}) ==")
    results = []
    for n in (args.builtin_slices, args.memory_slices):
        job = {"base_db": str(base_db), "slices": n, "mode": "builtin", "tag": f"builtin{n}"}
        job |= {"concurrency": args.builtin_concurrency, "profile": None}
        if args.profile:
            job["profile"] = str(Path(args.profile) / f"builtin{n}.prof")
        r = run_child("annotate", job)
        results.append(r)
        calls = sum(r["counts"].values())
        print(
            f"{r['done']:>6} slices: {1000 * r['cpu_s'] / r['done']:.2f} ms CPU/slice "
            f"({1000 * r['cpu_s'] / calls:.2f} ms per builtin call, {calls / r['done']:.1f} "
            f"calls/slice), {r['done'] / r['wall_s']:.0f} slices/s, wall {r['wall_s']:.1f} s, "
            f"RSS {r['start_rss_mb']:.0f} MiB at start, PEAK RSS {r['peak_rss_mb']:.0f} MiB"
        )
    small, large = results
    marks = ", ".join(f"{done}: {mb:.0f}" for done, mb in large["rss_marks"])
    print(f"RSS (MiB) along the {large['done']}-slice run: {marks}")
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    per_slice = 1024 * growth / (large["done"] - small["done"])
    verdict = "flat" if growth < FLAT_MIB else f"GROWS, {per_slice:.1f} KiB per slice"
    print(f"PEAK RSS {small['done']} -> {large['done']} slices: {growth:+.0f} MiB ({verdict})")
    if args.profile:
        print(
            f"\n-- builtin {small['done']}, top by own time --"
            + _top(Path(args.profile) / f"builtin{small['done']}.prof")
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--slices", type=int, default=200, help="slices of the model-call run (7 calls each)"
    )
    p.add_argument("--builtin-slices", type=int, default=2500)
    p.add_argument("--memory-slices", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--builtin-concurrency", type=int, default=8, help="the CLI default")
    p.add_argument("--latency", type=float, default=1.0, help="server latency, seconds")
    p.add_argument("--quick", action="store_true", help="small images and fewer slices (~1 min)")
    p.add_argument("--only", choices=("calls", "builtin"), help="run one part only")
    p.add_argument("--workdir", help="keep stores here (default: a temporary folder)")
    p.add_argument("--profile", help="cProfile each timed section into this folder")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("job", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        job = json.loads(args.job)
        if args.child == "server":
            serve(job["latency"])
            return 0
        if args.child == "reference":
            result = reference_loop(job, CALLS_PER_SLICE * WARM_SLICES)
        else:
            result = child_annotate(job)
        print(json.dumps(result))
        return 0
    if args.quick:
        args.slices, args.builtin_slices, args.memory_slices = 48, 500, 2000
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        print("profiling: CPU numbers below are inflated by cProfile; compare ratios only")
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or stack.enter_context(tempfile.TemporaryDirectory())
        Path(workdir).mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        base_db = make_base_store(Path(workdir), small=args.quick)
        print(f"sample store ingested in {time.perf_counter() - started:.1f} s ({workdir})")
        if args.only != "builtin":
            bench_calls(args, base_db)
        if args.only != "calls":
            bench_builtin(args, base_db)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
