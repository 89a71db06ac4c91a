"""Full approval round trips per second, and how fast a decision resumes the agent.

One round trip: the call reaches the gate → the request is stored → a scripted approver
sees it and approves through the interface a person would use → the waiting call resumes
→ the tool runs → the outcome is recorded. Resume latency runs from the approval being
accepted (the approver's decide call returned) to the tool body starting.

    python bench/roundtrip.py --n 5000 --db sqlite --mode inproc [--concurrency 1]

Prints one JSON line (docs/benchmarks.md).

    python bench/roundtrip.py --versus langgraph [--rounds 5] [--n 2000] [--peer-n 200]
        [--synchronous normal|full]

runs the same in-process SQLite round trip and LangGraph's interrupt/resume on its
SqliteSaver (bench/peers/langgraph_hitl.py) in turn, ``--rounds`` times each, in this one
process, and prints one JSON line: the median of each side, and their ratio. Only such a
ratio means something on a machine whose speed swings between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff.events import EventType

from _common import median, peak_rss_mb, percentile, store_url

APPROVER = Principal(sub="bench-approver", role="admin")


async def inproc(n: int, db: str, concurrency: int, url: str | None = None) -> dict[str, Any]:
    """``url``: the store to run on (default: a fresh one of kind ``db``)."""
    gate = Gate(url or store_url(db))
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


def versus_langgraph(n: int, peer_n: int, rounds: int, synchronous: str) -> dict[str, Any]:
    """signoff's sequential in-process round trip on SQLite and LangGraph's, in turn.

    Each round runs both, each on a fresh SQLite file in a folder of its own; which one
    goes first alternates from round to round, so that neither always runs on a warmer (or
    a busier) machine. ``ratio`` is signoff's median over the peer's median; ``ratios`` are
    the rounds' own, each from two runs seconds apart. ``synchronous`` is signoff's SQLite
    setting: ``normal`` is its default; ``full`` waits for the disk at every commit, as
    LangGraph's ``SqliteSaver`` does (it leaves SQLite's default, ``FULL``).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from langgraph_hitl import measure as peer_measure

    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []

    def run_ours() -> None:
        with tempfile.TemporaryDirectory(prefix="signoff-bench-") as folder:
            url = f"{store_url('sqlite', folder)}?synchronous={synchronous}"
            ours.append(asyncio.run(inproc(n, "sqlite", 1, url)))

    def run_theirs() -> None:
        with tempfile.TemporaryDirectory(prefix="peer-langgraph-") as folder:
            theirs.append(peer_measure(peer_n, folder))

    for k in range(rounds):
        for side in (run_ours, run_theirs) if k % 2 == 0 else (run_theirs, run_ours):
            side()

    def med(results: list[dict[str, Any]], key: str) -> float:
        return round(median([float(result[key]) for result in results]), 3)

    signoff_rps, peer_rps = med(ours, "approvals_per_s"), med(theirs, "approvals_per_s")
    return {
        "bench": "roundtrip_versus",
        "peer": "langgraph-sqlite",
        "rounds": rounds,
        "n": n,
        "peer_n": peer_n,
        "synchronous": synchronous,
        "signoff_rps": signoff_rps,
        "peer_rps": peer_rps,
        "ratio": round(signoff_rps / peer_rps, 2),
        "ratios": [
            round(a["approvals_per_s"] / b["approvals_per_s"], 2)
            for a, b in zip(ours, theirs, strict=True)
        ],
        "signoff_resume_p50_ms": med(ours, "resume_p50_ms"),
        "signoff_resume_p99_ms": med(ours, "resume_p99_ms"),
        "peer_resume_p50_ms": med(theirs, "resume_p50_ms"),
        "peer_resume_p99_ms": med(theirs, "resume_p99_ms"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--db", choices=["memory", "sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mode", choices=["inproc", "http"], default="inproc")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--versus", choices=["langgraph"], help="alternate with a peer's round trip"
    )
    parser.add_argument("--rounds", type=int, default=5, help="with --versus: rounds per side")
    parser.add_argument(
        "--peer-n", type=int, default=200, help="with --versus: the peer's round trips per round"
    )
    parser.add_argument(
        "--synchronous",
        choices=["normal", "full"],
        default="normal",
        help="signoff's SQLite durability in process (LangGraph's SqliteSaver runs full)",
    )
    args = parser.parse_args()
    if args.versus:
        if (args.db, args.mode, args.concurrency) != ("sqlite", "inproc", 1):
            parser.error("--versus compares sequential in-process round trips on SQLite")
        if args.rounds < 1 or args.peer_n < 1:
            parser.error("--rounds and --peer-n must be at least 1")
        result = versus_langgraph(args.n, args.peer_n, args.rounds, args.synchronous)
    elif args.mode == "http":
        from _http import http_roundtrip

        result = http_roundtrip(args.n, args.db, args.concurrency)
    else:
        url = None
        if args.db == "sqlite" and args.synchronous != "normal":
            url = f"{store_url('sqlite')}?synchronous={args.synchronous}"
        result = asyncio.run(inproc(args.n, args.db, args.concurrency, url))
        if url is not None:
            result["synchronous"] = args.synchronous
    print(json.dumps(result))


if __name__ == "__main__":
    main()
