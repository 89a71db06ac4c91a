"""``roundtrip.py --mode http``: a real ``signoff serve`` subprocess, the agent on the remote
gate, and a scripted approver that hears requests on the event stream and decides over HTTP,
as the dashboard and the CLI do. ``peak_rss_mb`` is the server's."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from signoff import CallStatus, Gate, Policy, Run
from signoff.auth import Issuer
from signoff.client import Client
from signoff.config import Config

from _common import percentile, store_url

SECRET = "bench-secret-that-is-long-enough-for-hs256-tokens"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_server(db: str, folder: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "SIGNOFF_SECRET": SECRET, "SIGNOFF_DB": store_url(db, folder)}
    server = subprocess.Popen(
        [sys.executable, "-m", "signoff", "serve", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the server did not start")


async def http_roundtrip(n: int, db: str, concurrency: int) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="signoff-bench-")
    server, url = _start_server(db, folder)
    config = Config()
    issuer = Issuer(SECRET.encode(), config.auth, config.roles)
    approver = Client(url, issuer.token("bench-approver", kind="approver", role="admin"))
    gate = Gate(url, token=issuer.token("bench-agent", kind="agent", ttl="2h"))
    accepted_at: dict[str, float] = {}
    body_started: dict[int, float] = {}
    request_of: dict[int, str] = {}

    @gate.tool(policy=Policy(min_role="editor"))
    async def transfer(i: int, amount: float) -> int:
        body_started[i] = time.perf_counter()
        return i

    async def approve_everything(ready: asyncio.Event) -> None:
        pending: set[asyncio.Task[None]] = set()

        async def decide(request_id: str) -> None:
            await approver.decide(request_id, "approve")
            accepted_at[request_id] = time.perf_counter()

        async with approver.follow() as feed:
            ready.set()
            async for event in feed:
                if event.type != "request.created":
                    continue
                request_of[event.snapshot.args["i"]] = event.request_id
                task = asyncio.create_task(decide(event.request_id))
                pending.add(task)
                task.add_done_callback(pending.discard)

    ready = asyncio.Event()
    listener = asyncio.create_task(approve_everything(ready))
    await ready.wait()
    await asyncio.sleep(0.3)  # the stream is open on the server before the first call
    run = Run(agent_id="bench-agent", run_id="bench")

    async def worker(indices: range) -> None:
        for i in indices:
            outcome = await gate.call(
                "transfer", {"i": i, "amount": 10.0}, tool_call_id=f"c{i}", run=run
            )
            assert outcome.status is CallStatus.EXECUTED, outcome

    try:
        await worker(range(n, n + 30))  # warm up connections and caches
        body_started.clear()
        accepted_at.clear()
        per = n // concurrency
        started = time.perf_counter()
        await asyncio.gather(*(worker(range(w * per, (w + 1) * per)) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
        peak = _peak_rss_mb(server.pid)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await gate.aclose()
        await approver.aclose()
        server.terminate()
        server.wait(timeout=30)
    latencies = [
        max(0.0, body_started[i] - accepted_at[request_of[i]]) * 1000
        for i in body_started
        if i in request_of and request_of[i] in accepted_at
    ]
    total = per * concurrency
    return {
        "n": total,
        "db": db,
        "mode": "http",
        "concurrency": concurrency,
        "approvals_per_s": round(total / elapsed, 1),
        "resume_p50_ms": round(percentile(latencies, 50), 3),
        "resume_p99_ms": round(percentile(latencies, 99), 3),
        "peak_rss_mb": round(peak, 1),
    }
