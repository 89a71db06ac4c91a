"""The outbox: how fast it empties into a webhook, and what a channel that is down costs a
gated call.

    python bench/deliveries.py [--n 2000] [--db sqlite] [--calls 200] [--rounds 5]

1. ``deliveries_per_s``: ``--n`` requests are made with a route to one webhook channel,
   each writing one delivery to the outbox in its transaction; then the delivery worker
   starts (default options) and the clock runs until a receiver in another process
   (bench/_webhook_receiver.py) has verified all ``n`` with ``standardwebhooks``.
2. ``down_*``: sequential gated round trips (call → request → an in-process approver
   approves → the tool runs → the outcome is recorded) through an embedded
   ``Gate(url, config=…)``, each on a fresh store: with a route to a webhook on a closed
   port (every delivery fails and is retried with backoff while the calls run), with the
   same route to the receiver (up), and with no channels. The order turns round from one
   round to the next; ``down_ratio`` (``up_ratio``) is the median of the rounds' own ratios
   (down / none of the median call latency), the only kind of figure that holds on a
   machine whose speed swings.

Prints one JSON line (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff.auth import Verifier
from signoff.config import Config, parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime, build_channels, make_context
from signoff.events import EventType
from signoff.models import RequestSpec
from signoff.service import ApprovalService

from _common import median, store_url

APPROVER = Principal(sub="bench-approver", role="admin")
AGENT = Principal(sub="bench-agent", kind="agent")
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def hook_config(url: str, secret: str) -> Config:
    return parse_config(
        {
            "channels": {"hook": {"type": "webhook", "url": url, "secret": secret}},
            "routes": [{"when": "true", "notify": ["hook"]}],
        },
        environ={},
    )


# -- 1. deliveries per second ----------------------------------------------------------------


def start_receiver(secret: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_webhook_receiver.py"), str(port)],
        env={**os.environ, "HOOK_SECRET": secret},
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the webhook receiver exited ({process.returncode})")
        try:
            if httpx.get(base + "/count", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the webhook receiver did not start")
        time.sleep(0.05)


async def throughput(n: int, db: str, base: str, secret: str) -> dict[str, Any]:
    config = hook_config(base + "/hook", secret)
    backends = connect(store_url(db))
    service = ApprovalService(backends.store, backends.bus, config=config)
    await service.start()
    for i in range(n):
        spec = RequestSpec(tool="transfer", args={"i": i}, policy={"timeout_s": 3600})
        await service.submit(spec, AGENT)
    key = secrets.token_bytes(32)
    runtime = ChannelRuntime(service, build_channels(config))
    context = make_context(service, Verifier(key, config.auth, config.roles), key, "http://x")
    async with httpx.AsyncClient(base_url=base) as client:
        before = (await client.get("/count")).json()["verified"]
        started = time.perf_counter()
        await runtime.start(context)
        while True:
            counts = (await client.get("/count")).json()
            if counts["verified"] - before >= n:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    assert counts["refused"] == 0, counts
    await runtime.aclose()
    await service.aclose()
    return {"n": n, "db": db, "deliveries_per_s": round(n / elapsed, 1)}


# -- 2. a gated call with a channel down -------------------------------------------------------


async def round_trips(calls: int, db: str, config: Config) -> float:
    """The median latency (ms) of ``calls`` sequential gated round trips on a fresh store."""
    gate = Gate(store_url(db), config=config)

    @gate.tool(policy=Policy(min_role="editor"))
    async def transfer(i: int) -> int:
        return i

    await gate.start()

    async def approver(ready: asyncio.Event) -> None:
        async with gate.approvals.follow() as feed:
            ready.set()
            async for event in feed:
                if event.type == EventType.CREATED:
                    await gate.approve(event.request_id, by=APPROVER)

    ready = asyncio.Event()
    approving = asyncio.create_task(approver(ready))
    await ready.wait()
    run = Run(agent_id="bench-agent", run_id="bench")
    latencies: list[float] = []
    for i in range(calls + 20):
        started = time.perf_counter()
        outcome = await gate.call("transfer", {"i": i}, tool_call_id=f"c{i}", run=run)
        assert outcome.status is CallStatus.EXECUTED, outcome
        if i >= 20:  # the first calls warm up imports and queries
            latencies.append((time.perf_counter() - started) * 1000)
    approving.cancel()
    await asyncio.gather(approving, return_exceptions=True)
    await gate.aclose()
    return median(latencies)


async def channel_down(calls: int, db: str, rounds: int, base: str, secret: str) -> dict[str, Any]:
    """The same calls with a channel that is down, one that is up (the receiver), and none."""
    variants = {
        # a closed port: every attempt is refused at once, and retried with backoff meanwhile
        "down": hook_config(f"http://127.0.0.1:{free_port()}/hook", new_secret()),
        "up": hook_config(base + "/hook", secret),
        "none": Config(),
    }
    medians: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {"down": [], "up": []}
    for r in range(rounds):
        order = list(variants.items())
        if r % 2:
            order.reverse()
        measured = {name: await round_trips(calls, db, config) for name, config in order}
        for name, value in measured.items():
            medians[name].append(value)
        for name, kept in ratios.items():
            kept.append(measured[name] / measured["none"])
    return {
        "calls": calls,
        "rounds": rounds,
        "down_call_ms": round(median(medians["down"]), 3),
        "up_call_ms": round(median(medians["up"]), 3),
        "no_channels_call_ms": round(median(medians["none"]), 3),
        "down_ratio": round(median(ratios["down"]), 3),
        "up_ratio": round(median(ratios["up"]), 3),
        "down_ratios": [round(x, 3) for x in ratios["down"]],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    secret = new_secret()
    receiver, base = start_receiver(secret)
    try:
        out = await throughput(args.n, args.db, base, secret)
        out.update(await channel_down(args.calls, args.db, args.rounds, base, secret))
    finally:
        receiver.terminate()
        receiver.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="deliveries to send")
    parser.add_argument("--db", default="sqlite", choices=["memory", "sqlite", "postgres"])
    parser.add_argument("--calls", type=int, default=200, help="gated calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
