"""Many calls waiting for a decision at once in one process: memory, then release.

    python bench/waiters.py --n 10000 [--db sqlite|memory]

Prints {"n", "rss_mb_per_1000_waiting", "resolve_all_s"} (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff.approvals import LocalApprovals

from _common import current_rss_mb, store_url

APPROVER = Principal(sub="bench-approver", role="admin")


async def measure(n: int, db: str) -> dict[str, float]:
    gate = Gate(store_url(db))

    @gate.tool(policy=Policy(min_role="editor", timeout="1h"))
    async def deploy(i: int) -> int:
        return i

    await gate.start()
    approvals = gate.approvals
    assert isinstance(approvals, LocalApprovals)
    service = approvals.service
    run = Run(agent_id="bench-agent", run_id="waiters")
    # warm up every code path once so that the baseline holds the imports and caches
    warm = asyncio.create_task(gate.call("deploy", {"i": -1}, tool_call_id="warm", run=run))
    while service.bus.waiting == 0:
        await asyncio.sleep(0.001)
    await gate.approve((await gate.pending())[0].id, by=APPROVER)
    await warm
    gc.collect()
    before = current_rss_mb()

    tasks = [
        asyncio.create_task(gate.call("deploy", {"i": i}, tool_call_id=f"w{i}", run=run))
        for i in range(n)
    ]
    while service.bus.waiting < n:
        await asyncio.sleep(0.01)
    gc.collect()
    waiting_rss = current_rss_mb() - before

    ids = [r.id for r in (await service.store.list_requests(_pending(n))).items]
    assert len(ids) == n, len(ids)
    started = time.perf_counter()
    for request_id in ids:
        await gate.approve(request_id, by=APPROVER)
    outcomes = await asyncio.gather(*tasks)
    resolve_all = time.perf_counter() - started
    assert all(o.status is CallStatus.EXECUTED for o in outcomes)
    await gate.aclose()
    return {
        "n": n,
        "rss_mb_per_1000_waiting": round(waiting_rss / n * 1000, 3),
        "resolve_all_s": round(resolve_all, 3),
    }


def _pending(n: int):  # type: ignore[no-untyped-def]
    from signoff.stores.base import ListQuery

    return ListQuery(status="pending", limit=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--db", choices=["memory", "sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.n, args.db))))


if __name__ == "__main__":
    main()
