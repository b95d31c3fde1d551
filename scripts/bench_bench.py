"""Benchmark performance: `bench run` pipe efficiency and cached re-run, `bench score` time.

    python scripts/bench_bench.py [--questions N] [--concurrency C] [--latency S] [--resamples B]

1. A loopback server (OpenAI wire protocol, free-text answers after `--latency` s, default 1)
   runs in its own process. `bench run --model openai:bench-model` asks N unique closed
   questions (default 1,000, each with a PNG image) at concurrency C (default 32). Pipe
   efficiency = ideal time (N x latency / C) over the run's elapsed time; goal >= 0.9. The SDK
   is warmed up first on a separate question, so imports are not counted.
2. The same run into a new predictions file: every answer comes from the cache; the server's
   request count must not move (goal: 0 calls).
3. `bench score` on the official closed file (3,190 questions) with B bootstrap resamples
   (default 1,000): one predictions file plus the three baselines; wall time reported, and the
   time of the metrics alone for one model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support (the loopback server) lives here
    sys.path.insert(0, str(ROOT))

OFFICIAL = Path(
    "/work/shared/reference/mm-neuroonco-bench-v1.0/mm-neuroonco_benchmark_closed_v1.0.json"
)
PIPE_GOAL = 0.9


def serve(latency_s: float) -> None:
    """Child: the text loopback server; prints its URL, then the request count per stdin line."""
    from tests.support.text_loopback import TextLoopbackServer

    server = TextLoopbackServer(text_responder=lambda body: "Answer: B", latency_s=latency_s)
    server.start()
    print(json.dumps({"url": server.url}), flush=True)
    for _ in sys.stdin:
        print(
            json.dumps(
                {
                    "chat_requests": len(server.chat_requests()),
                    "max_in_flight": server.max_in_flight,
                }
            ),
            flush=True,
        )
    server.stop()


class Server:
    def __init__(self, latency_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child-server", str(latency_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.url = self._read()["url"]

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def stats(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


def write_bench(folder: Path, n: int) -> Path:
    """N unique closed questions (4 per record, one 64x64 PNG per record)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for r in range((n + 3) // 4):
        image = f"img/{r}.png"
        (folder / "img").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / image)
        pairs = [
            {
                "question_type": "diagnosis",
                "question": f"Record {r}, question {k}: diagnosis?",
                "options": {
                    "A": "glioma",
                    "B": "meningioma",
                    "C": "metastasis",
                    "D": "schwannoma",
                    "E": "None of the above",
                },
                "answer": "B",
            }
            for k in range(min(4, n - 4 * r))
        ]
        records.append({"id": r + 1, "image_path": image, "vqa_pairs": pairs})
    path = folder / "closed.json"
    path.write_text(json.dumps(records))
    return path


def bench_run(args: argparse.Namespace, work: Path) -> dict:
    from neuroonco.benchmark.files import load_bench
    from neuroonco.benchmark.runner import RunOptions, run_bench

    bench = load_bench(write_bench(work, args.questions))
    server = Server(args.latency)
    try:
        os.environ["OPENAI_BASE_URL"] = server.url + "/v1"
        os.environ["OPENAI_API_KEY"] = "bench"
        spec = "openai:bench-model"
        options = RunOptions(
            images_root=work, concurrency=args.concurrency, cache_path=work / "cache.sqlite"
        )
        warm = RunOptions(images_root=work, concurrency=1, limit=1, use_cache=False)
        run_bench(bench, spec, work / "warm.jsonl", warm)
        before = server.stats()["chat_requests"]
        cpu = time.process_time()
        first = run_bench(bench, spec, work / "first.jsonl", options)
        cpu = time.process_time() - cpu
        after_first = server.stats()
        started = time.perf_counter()
        second = run_bench(bench, spec, work / "second.jsonl", options)
        rerun_s = time.perf_counter() - started
        after_second = server.stats()
    finally:
        server.close()
    ideal = args.questions * args.latency / args.concurrency
    return {
        "questions": args.questions,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "ideal_s": ideal,
        "ideal_rounds_s": math.ceil(args.questions / args.concurrency) * args.latency,
        "elapsed_s": first.elapsed_s,
        "pipe_efficiency": ideal / first.elapsed_s,
        "calls": after_first["chat_requests"] - before,
        "max_in_flight": after_first["max_in_flight"],
        "errors": first.errors,
        "cpu_ms_per_question": 1000 * cpu / args.questions,
        "rerun_calls": after_second["chat_requests"] - after_first["chat_requests"],
        "rerun_cached": second.cached,
        "rerun_s": rerun_s,
    }


def bench_score(args: argparse.Namespace, work: Path) -> dict:
    from neuroonco.benchmark.files import load_bench
    from neuroonco.benchmark.metrics import closed_metrics, score_closed
    from neuroonco.benchmark.score import ScoreOptions, score_bench

    bench = load_bench(OFFICIAL)
    rng = random.Random(0)
    pred = work / "official.jsonl"
    with pred.open("w") as handle:
        for q in bench.closed:
            response = (
                q.answer
                if rng.random() < 0.6
                else rng.choice(["Answer: A", "The answer is (B).", "I'm not sure.", "C or D", "E"])
            )
            handle.write(
                json.dumps(
                    {"question_id": q.question_id, "response": response, "model": "openai:fake"}
                )
                + "\n"
            )
    started = time.perf_counter()
    score_bench(bench, [pred], work / "report", ScoreOptions(resamples=args.resamples))
    total = time.perf_counter() - started
    predictions = {(q.question_id, 0): {"response": q.answer} for q in bench.closed}
    started = time.perf_counter()
    closed_metrics(score_closed(bench.closed, predictions), resamples=args.resamples)
    one = time.perf_counter() - started
    return {
        "questions": len(bench.closed),
        "resamples": args.resamples,
        "score_s_4_models_with_report": total,
        "metrics_s_one_model": one,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--child-server", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_server is not None:
        serve(args.child_server)
        return
    with tempfile.TemporaryDirectory(prefix="bench-bench-") as tmp:
        work = Path(tmp)
        run = bench_run(args, work)
        score = bench_score(args, work)
    print(
        f"bench run: {run['questions']} questions, concurrency {run['concurrency']}, "
        f"server latency {run['latency_s']:g} s"
    )
    print(f"  {'':28} {'ours':>10} {'ideal':>10}")
    print(f"  {'elapsed (s)':28} {run['elapsed_s']:10.2f} {run['ideal_s']:10.2f}")
    print(
        f"  {'pipe efficiency':28} {run['pipe_efficiency']:10.3f} {1:10.3f}   "
        f"goal >= {PIPE_GOAL} {'OK' if run['pipe_efficiency'] >= PIPE_GOAL else 'MISSED'}"
    )
    print(f"  {'model calls':28} {run['calls']:10d} {run['questions']:10d}")
    print(f"  {'most requests in flight':28} {run['max_in_flight']:10d} {run['concurrency']:10d}")
    print(f"  {'client CPU per question (ms)':28} {run['cpu_ms_per_question']:10.2f}")
    print(
        f"  re-run into a new file: {run['rerun_calls']} calls, {run['rerun_cached']} cached, "
        f"{run['rerun_s']:.2f} s   goal: 0 calls {'OK' if run['rerun_calls'] == 0 else 'MISSED'}"
    )
    print(
        f"bench score, official closed file ({score['questions']} questions), "
        f"{score['resamples']} bootstrap resamples:"
    )
    print(
        f"  one model + 3 baselines, metrics.json, report and plots: "
        f"{score['score_s_4_models_with_report']:.2f} s"
    )
    print(f"  metrics of one model alone: {score['metrics_s_one_model']:.2f} s")
    print(json.dumps({"run": run, "score": score}))


if __name__ == "__main__":
    main()
