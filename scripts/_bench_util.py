"""Helpers of `bench_annotate.py`: stores of many unique slices, CPU/RSS readings, child processes.

Every measured party runs in its own process so that no one's CPU is counted for another: the
loopback server (`serve`), the annotate run and the bare instructor loop. Children print one JSON
line as their last line of output; the parent reads it back (`run_child`).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support (loopback server, canned answers) lives here
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def profiled(path: str | None):
    """cProfile the block into ``path`` (when given)."""
    if not path:
        yield
        return
    prof = cProfile.Profile(time.process_time)  # CPU time: waiting on the network is free
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        prof.dump_stats(path)


def cpu_s() -> float:
    """User + system CPU seconds of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    """Resident set size now, in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process image so far, in MiB.

    VmHWM, not ``ru_maxrss``: Linux carries ru_maxrss over fork and exec, so a child would
    report its parent's peak whenever that was larger.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak_rss() -> None:
    """Restart VmHWM from the current RSS (Linux ``clear_refs`` 5), so a peak read later covers
    only what ran after this call, not the set-up before it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def make_base_store(workdir: Path, *, small: bool) -> Path:
    """The sample tree ingested into ``workdir/base.db`` (images in ``workdir/base_images``)."""
    from neuroonco.ingest import IngestOptions, ingest
    from neuroonco.tools.sample_tree import write_sample_tree

    db = workdir / "base.db"
    if not db.exists():
        write_sample_tree(workdir / "src", seed=3, small=small)
        ingest([workdir / "src"], db, IngestOptions(negatives=1))
    return db


def expand_store(base_db: Path, dst_db: Path, n: int, tag: str) -> int:
    """A copy of ``base_db`` whose slices are ``n`` unique copies of its non-duplicate slices.

    Copies share the image files (``dst_db`` must sit beside ``base_db``) but each gets its own
    id, group and a ``_copy`` key in its measurements: every model call of every slice then has
    its own cache key (the grounding is part of it), as distinct real slices would. Prompts do
    not render unknown measurement keys, so what the models read is unchanged.
    """
    if dst_db.parent.resolve() != base_db.parent.resolve():
        raise ValueError("the expanded store must sit beside the base store (shared images)")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dst_db}{suffix}").unlink(missing_ok=True)
    src = sqlite3.connect(base_db)
    dst = sqlite3.connect(dst_db)
    src.backup(dst)
    src.close()
    dst.row_factory = sqlite3.Row
    base = [
        dict(r)
        for r in dst.execute("select * from slices where duplicate_of is null order by rowid")
    ]
    rows = []
    for i in range(n):
        row = dict(base[i % len(base)])
        measurements = json.loads(row["measurements"]) if row["measurements"] else {}
        measurements["_copy"] = f"{tag}{i}"
        row.update(
            id=f"{row['id']}-{tag}{i}",
            group_id=f"{row['group_id']}-{tag}{i // len(base)}" if row["group_id"] else None,
            measurements=json.dumps(measurements, sort_keys=True),
            content_hash=f"{row['content_hash']}-{tag}{i}",
        )
        rows.append(row)
    cols = list(base[0])
    with dst:
        dst.execute("delete from slices")
        dst.executemany(
            f"insert into slices ({','.join(cols)}) values ({','.join('?' * len(cols))})",
            [[r[c] for c in cols] for r in rows],
        )
    dst.close()
    return n


def run_child(role: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict:
    """Run ``bench_annotate.py --child ROLE`` in a fresh interpreter; its last stdout line."""
    script = Path(__file__).with_name("bench_annotate.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--child", role, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {role} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class ServerProcess:
    """The loopback server in its own process; `take()` returns and clears its request log."""

    def __init__(self, latency_s: float) -> None:
        script = Path(__file__).with_name("bench_annotate.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--child", "server", json.dumps({"latency": latency_s})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.url = self._read()["url"]

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the loopback server process died")
        return json.loads(line)

    def take(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write("take\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def serve(latency_s: float) -> None:
    """Child: a LoopbackServer answering every agent schema after ``latency_s``.

    Answer times are logged (the responder runs once the latency has passed, so a request
    arrived ``latency_s`` before its answer time); ``take`` on stdin prints and clears them.
    """
    from tests.support.agents import agent_responder
    from tests.support.loopback import LoopbackServer

    answered: list[float] = []

    def responder(body: Any) -> Any:
        answered.append(time.time())
        return agent_responder(body)

    server = LoopbackServer(responder=responder, latency_s=latency_s).start()
    print(json.dumps({"url": server.openai_base_url}), flush=True)
    for line in sys.stdin:
        if line.strip() != "take":
            continue
        times, answered[:] = list(answered), []
        peak, server.max_in_flight = server.max_in_flight, server.in_flight
        server.requests.clear()  # they hold every request body (images): keep memory flat
        print(json.dumps({"answered": times, "max_in_flight": peak, "cpu_s": cpu_s()}), flush=True)
    server.stop()


def reference_loop(a: dict[str, Any], model: str, warm: int) -> dict[str, Any]:
    """Child: the annotate run's model calls without our stack, ``a['concurrency']`` at once.

    ``kind`` "instructor": ``instructor.from_openai(AsyncOpenAI(...))`` and ``create(
    response_model=...)``, the bare loop of the goal; "raw": the SDK alone with the tool
    definition built once and the answer validated by the response model (the floor).
    ``http`` "aiohttp" swaps the SDK's httpx transport for ``openai.DefaultAioHttpClient``.
    Same system texts, prompts, captions, PNG files (read and base64-encoded per call).
    """
    import base64

    import instructor
    import openai

    from neuroonco.agents.prompts import SYSTEMS
    from neuroonco.schemas.agents import DiagnosisOpinion
    from neuroonco.schemas.findings import SliceFindings

    models = {"describer": SliceFindings, "diagnostician": DiagnosisOpinion}
    tools = {
        role: {
            "type": "function",
            "function": {
                "name": m.__name__,
                "description": m.__doc__ or "",
                "parameters": m.model_json_schema(),
            },
        }
        for role, m in models.items()
    }
    base_dir = Path(a["base_dir"])
    calls = json.loads(Path(a["calls_file"]).read_text())

    def messages(call: dict[str, Any]) -> list[dict[str, Any]]:
        png = (base_dir / call["image"]).read_bytes()
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        caption = f"{call['modality'] or 'unknown sequence'} (slice under review)"
        content = [
            {"type": "text", "text": caption},
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": call["prompt"]},
        ]
        return [
            {"role": "system", "content": SYSTEMS[call["role"]]},
            {"role": "user", "content": content},
        ]

    async def loop(batch: list[dict[str, Any]]) -> None:
        http = openai.DefaultAioHttpClient() if a["http"] == "aiohttp" else None
        raw = openai.AsyncOpenAI(
            base_url=a["url"], api_key="no-key", max_retries=0, http_client=http
        )
        client = instructor.from_openai(raw)
        gate = asyncio.Semaphore(a["concurrency"])

        async def one(call: dict[str, Any]) -> None:
            kwargs = {"model": model, "messages": messages(call), "temperature": 0.0}
            async with gate:
                if a["kind"] == "instructor":
                    await client.chat.completions.create(
                        response_model=models[call["role"]],
                        max_tokens=1024,
                        max_retries=2,
                        **kwargs,
                    )
                    return
                tool = tools[call["role"]]
                choice = {"type": "function", "function": {"name": tool["function"]["name"]}}
                reply = await raw.chat.completions.create(
                    tools=[tool], tool_choice=choice, max_tokens=1024, **kwargs
                )
            arguments = reply.choices[0].message.tool_calls[0].function.arguments
            models[call["role"]].model_validate_json(arguments)

        await asyncio.gather(*(one(c) for c in batch))
        await raw.close()

    asyncio.run(loop(calls[:warm]))
    c0, w0, t0 = cpu_s(), time.perf_counter(), time.time()
    with profiled(a.get("profile")):
        asyncio.run(loop(calls))
    cpu, wall = cpu_s() - c0, time.perf_counter() - w0
    return {"model_calls": len(calls), "cpu_s": cpu, "wall_s": wall, "t0": t0}
