"""``roundtrip.py --mode http``: a real ``signoff serve`` subprocess, the agent on the remote
gate, and a scripted approver that hears requests on the event stream and decides over HTTP,
as the dashboard and the CLI do. ``peak_rss_mb`` is the server's.

Also the pieces ``replicas.py`` shares: starting servers and waiting until they answer,
stopping them whatever happens, the benchmarks' tokens and signing key."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from signoff import CallStatus, Gate, Policy, Run
from signoff.auth import Issuer
from signoff.client import Client
from signoff.config import Config

from _common import percentile, store_url

SECRET = "bench-secret-that-is-long-enough-for-hs256-tokens"


@dataclass(frozen=True)
class Server:
    """One ``signoff serve`` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    #: where its stderr goes, shown when it does not start
    log: Path

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def signing_seed() -> str:
    """A fresh ``SIGNOFF_SIGNING_KEY``: a base64url Ed25519 seed of 32 bytes, shared by the
    replicas of one run so that every one of them signs the audit checkpoints alike."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def spawn_server(db_url: str, folder: str, env: Mapping[str, str] | None = None) -> Server:
    """Start ``signoff serve`` on a free loopback port (not yet answering: see
    :func:`wait_ready`)."""
    port = free_port()
    environ = {**os.environ, "SIGNOFF_SECRET": SECRET, "SIGNOFF_DB": db_url, **(env or {})}
    log = Path(folder) / f"serve-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "signoff", "serve", "--port", str(port)],
            env=environ,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def wait_ready(servers: Sequence[Server], timeout: float = 30) -> None:
    """Wait until each server answers ``/readyz``; SystemExit when one exits or is late."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while True:
            if server.process.poll() is not None:
                raise SystemExit(
                    f"the server at {server.url} exited ({server.process.returncode}):\n"
                    + server.log_tail()
                )
            try:
                if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server at {server.url} did not start:\n{server.log_tail()}")
            time.sleep(0.05)


def stop_servers(servers: Sequence[Server], timeout: float = 15) -> None:
    """Terminate the servers and wait for them; kill those that do not stop in time."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running_servers(
    count: int, db_url: str, folder: str, env: Mapping[str, str] | None = None
) -> Iterator[list[Server]]:
    """``count`` servers on one store, answering; all of them stopped on the way out, however
    it is left (an error, Ctrl-C)."""
    servers: list[Server] = []
    try:
        # extend appends each one as it starts: an error half way still stops the earlier ones
        servers.extend(spawn_server(db_url, folder, env) for _ in range(count))
        wait_ready(servers)
        yield servers
    finally:
        stop_servers(servers)


def http_roundtrip(n: int, db: str, concurrency: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="signoff-bench-") as folder,
        running_servers(1, store_url(db, folder), folder) as servers,
    ):
        return asyncio.run(_drive(servers[0], n, db, concurrency))


def tokens() -> tuple[str, str]:
    """An agent's token and an admin approver's, signed with the benchmarks' secret."""
    config = Config()
    issuer = Issuer(SECRET.encode(), config.auth, config.roles)
    agent = issuer.token("bench-agent", kind="agent", ttl="2h")
    return agent, issuer.token("bench-approver", kind="approver", role="admin", ttl="2h")


async def _drive(server: Server, n: int, db: str, concurrency: int) -> dict[str, Any]:
    url = server.url
    agent_token, approver_token = tokens()
    approver = Client(url, approver_token)
    gate = Gate(url, token=agent_token)
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
        peak = peak_rss_mb_of(server.process.pid)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await gate.aclose()
        await approver.aclose()
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
