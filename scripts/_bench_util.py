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

    models = {"bench-vlm": ["completion", "vision"]}
    server = LoopbackServer(responder=responder, latency_s=latency_s, ollama_models=models)
    server.start()
    print(json.dumps({"url": server.url}), flush=True)
    for line in sys.stdin:
        if line.strip() != "take":
            continue
        times, answered[:] = list(answered), []
        peak, server.max_in_flight = server.max_in_flight, server.in_flight
        server.requests.clear()  # they hold every request body (images): keep memory flat
        print(json.dumps({"answered": times, "max_in_flight": peak, "cpu_s": cpu_s()}), flush=True)
    server.stop()


def reference_loop(a: dict[str, Any], warm: int) -> dict[str, Any]:
    """Child: the annotate run's model calls without our stack, ``a['concurrency']`` at once.

    ``kind`` "instructor": the bare loop of the goal, ``instructor.from_openai(AsyncOpenAI())``
    and ``instructor.from_anthropic(AsyncAnthropic())`` with ``create(response_model=...)``, and
    for Ollama (instructor has no native mode) ``AsyncClient.chat(format=schema)`` validated by
    the response model; "raw": the SDKs alone with the tool definitions built once and the
    answer validated by the response model (the floor). ``http`` "aiohttp" swaps the OpenAI and
    Anthropic SDKs' httpx transport for their ``DefaultAioHttpClient``. Same models, system
    texts, prompts, captions, PNG files (read and base64-encoded per call).
    """
    import base64

    import anthropic
    import instructor
    import ollama
    import openai

    from neuroonco.agents.prompts import RESPONSE_MODELS, SYSTEMS, field_guide

    base_dir = Path(a["base_dir"])
    calls = json.loads(Path(a["calls_file"]).read_text())
    url = a["url"]

    def images(call: dict[str, Any]) -> list[tuple[str, bytes]]:
        if call["role"] not in ("describer", "diagnostician"):
            return []
        caption = f"{call['modality'] or 'unknown sequence'} (slice under review)"
        return [(caption, (base_dir / call["image"]).read_bytes())]

    def openai_messages(call: dict[str, Any]) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for caption, png in images(call):
            data = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            content += [
                {"type": "text", "text": caption},
                {"type": "image_url", "image_url": {"url": data}},
            ]
        content.append({"type": "text", "text": call["prompt"]})
        return [
            {"role": "system", "content": SYSTEMS[call["role"]]},
            {"role": "user", "content": content},
        ]

    def anthropic_messages(call: dict[str, Any]) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for caption, png in images(call):
            source = {
                "type": "base64",
                "media_type": "image/png",
                "data": base64.b64encode(png).decode("ascii"),
            }
            content += [{"type": "text", "text": caption}, {"type": "image", "source": source}]
        content.append({"type": "text", "text": call["prompt"]})
        return [{"role": "user", "content": content}]

    def ollama_messages(call: dict[str, Any]) -> list[dict[str, Any]]:
        model = RESPONSE_MODELS[call["role"]]
        user: dict[str, Any] = {
            "role": "user",
            "content": f"{call['prompt']}\n\n{field_guide(model)}",
        }
        found = images(call)
        if found:
            user["content"] = "\n".join([f"Image 1: {found[0][0]}", "", user["content"]])
            user["images"] = [base64.b64encode(png).decode("ascii") for _, png in found]
        return [{"role": "system", "content": SYSTEMS[call["role"]]}, user]

    def tool(model: Any) -> dict[str, Any]:
        return {
            "name": model.__name__,
            "description": model.__doc__ or "",
            "parameters": model.model_json_schema(),
        }

    tools = {role: tool(m) for role, m in RESPONSE_MODELS.items()}

    async def loop(batch: list[dict[str, Any]]) -> None:
        aio = a["http"] == "aiohttp"
        oa = openai.AsyncOpenAI(
            base_url=url + "/v1",
            api_key="no-key",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient() if aio else None,
        )
        an = anthropic.AsyncAnthropic(
            base_url=url,
            api_key="no-key",
            max_retries=0,
            http_client=anthropic.DefaultAioHttpClient() if aio else None,
        )
        ol = ollama.AsyncClient(host=url)
        oa_i, an_i = instructor.from_openai(oa), instructor.from_anthropic(an)
        gate = asyncio.Semaphore(a["concurrency"])

        async def one(call: dict[str, Any]) -> None:
            provider, _, name = call["model"].partition(":")
            model = RESPONSE_MODELS[call["role"]]
            t = tools[call["role"]]
            async with gate:
                if provider == "ollama":
                    reply = await ol.chat(
                        model=name,
                        messages=ollama_messages(call),
                        format=model.model_json_schema(),
                        options={"temperature": 0.0, "num_predict": 1024},
                    )
                    text = reply.message.content
                elif a["kind"] == "instructor" and provider == "openai":
                    await oa_i.chat.completions.create(
                        model=name,
                        messages=openai_messages(call),
                        response_model=model,
                        temperature=0.0,
                        max_tokens=1024,
                        max_retries=2,
                    )
                    return
                elif a["kind"] == "instructor":
                    await an_i.messages.create(
                        model=name,
                        system=SYSTEMS[call["role"]],
                        messages=anthropic_messages(call),
                        response_model=model,
                        max_tokens=1024,
                        max_retries=2,
                    )
                    return
                elif provider == "openai":
                    fn = {"type": "function", "function": t}
                    choice = {"type": "function", "function": {"name": t["name"]}}
                    reply = await oa.chat.completions.create(
                        model=name,
                        messages=openai_messages(call),
                        tools=[fn],
                        tool_choice=choice,
                        temperature=0.0,
                        max_tokens=1024,
                    )
                    text = reply.choices[0].message.tool_calls[0].function.arguments
                else:
                    reply = await an.messages.create(
                        model=name,
                        system=SYSTEMS[call["role"]],
                        messages=anthropic_messages(call),
                        tools=[
                            {
                                "name": t["name"],
                                "description": t["description"],
                                "input_schema": t["parameters"],
                            }
                        ],
                        tool_choice={"type": "tool", "name": t["name"]},
                        max_tokens=1024,
                    )
                    text = json.dumps(reply.content[0].input)
            model.model_validate_json(text)

        await asyncio.gather(*(one(c) for c in batch))
        await oa.close()
        await an.close()

    asyncio.run(loop(calls[:warm]))
    c0, w0, t0 = cpu_s(), time.perf_counter(), time.time()
    with profiled(a.get("profile")):
        asyncio.run(loop(calls))
    cpu, wall = cpu_s() - c0, time.perf_counter() - w0
    return {"model_calls": len(calls), "cpu_s": cpu, "wall_s": wall, "t0": t0}
