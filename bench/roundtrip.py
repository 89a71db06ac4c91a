"""Full approval round trips per second, and how fast a decision resumes the agent.

One round trip: the call reaches the gate → the request is stored → a scripted approver
sees it and approves through the interface a person would use → the waiting call resumes
→ the tool runs → the outcome is recorded. Resume latency runs from the approval being
accepted (the approver's decide call returned) to the tool body starting.

    python bench/roundtrip.py --n 5000 --db sqlite --mode inproc [--concurrency 1]

Prints one JSON line (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff.events import EventType

from _common import peak_rss_mb, percentile, store_url

APPROVER = Principal(sub="bench-approver", role="admin")


async def inproc(n: int, db: str, concurrency: int) -> dict[str, Any]:
    gate = Gate(store_url(db))
    accepted_at: dict[str, float] = {}
    body_started: dict[str, float] = {}
    current: dict[int, str] = {}

    @gate.tool(policy=Policy(min_role="editor"))
    async def transfer(i: int, amount: float) -> int:
        body_started[current[i]] = time.perf_counter()
        return i

    await gate.start()

    async def approver(ready: asyncio.Event) -> None:
        # the approver follows the live events as any in-process approver would
        async with gate.approvals.follow() as feed:
            ready.set()
            async for event in feed:
                if event.type != EventType.CREATED:
                    continue
                request_id = event.request_id
                current[event.snapshot.args["i"]] = request_id
                await gate.approve(request_id, by=APPROVER)
                accepted_at[request_id] = time.perf_counter()

    ready = asyncio.Event()
    approver_task = asyncio.create_task(approver(ready))
    await ready.wait()
    run = Run(agent_id="bench-agent", run_id="bench")

    async def worker(indices: range) -> None:
        for i in indices:
            outcome = await gate.call(
                "transfer", {"i": i, "amount": 10.0}, tool_call_id=f"c{i}", run=run
            )
            assert outcome.status is CallStatus.EXECUTED, outcome

    # warm up (imports, first queries) outside the measurement
    await worker(range(n, n + 50))
    accepted_at.clear()
    body_started.clear()
    per = n // concurrency
    started = time.perf_counter()
    await asyncio.gather(*(worker(range(w * per, (w + 1) * per)) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    approver_task.cancel()
    await gate.aclose()
    latencies = [
        max(0.0, body_started[r] - accepted_at[r]) * 1000 for r in body_started if r in accepted_at
    ]
    total = per * concurrency
    return {
        "n": total,
        "db": db,
        "mode": "inproc",
        "concurrency": concurrency,
        "approvals_per_s": round(total / elapsed, 1),
        "resume_p50_ms": round(percentile(latencies, 50), 3),
        "resume_p99_ms": round(percentile(latencies, 99), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--db", choices=["memory", "sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mode", choices=["inproc", "http"], default="inproc")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "http":
        from _http import http_roundtrip

        result = http_roundtrip(args.n, args.db, args.concurrency)
    else:
        result = asyncio.run(inproc(args.n, args.db, args.concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
