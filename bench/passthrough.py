"""What the gate costs a call its policy lets straight through.

    python bench/passthrough.py --n 200000
    python bench/passthrough.py --n 200000 --mcp 2000

Prints {"n", "gated_us_per_call", "direct_us_per_call"} (CONTRACT.md §6): the best of five
timed runs of N awaited calls each, gated and direct. With ``--mcp M`` (needs the ``mcp``
extra) it adds, side by side, M MCP tool calls through ``signoff mcp-proxy`` and straight
to the upstream server, over stdio and in process (see ``_mcp_bench.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from signoff import Gate, Policy


async def measure(n: int) -> dict[str, Any]:
    gate = Gate("memory://")

    async def lookup_order(order_id: str, amount: float) -> float:
        return amount

    gated = gate.tool(
        policy=Policy(when=lambda ctx: ctx.args["amount"] > 100), name="lookup_order"
    )(lookup_order)

    async def timed(fn: object) -> float:
        call = fn  # the same loop shape for both
        start = time.perf_counter()
        for _ in range(n):
            await call(order_id="ORD-1", amount=50.0)  # type: ignore[operator]
        return (time.perf_counter() - start) / n * 1e6

    best_gated = min([await timed(gated) for _ in range(5)])
    best_direct = min([await timed(lookup_order) for _ in range(5)])
    return {
        "n": n,
        "gated_us_per_call": round(best_gated, 3),
        "direct_us_per_call": round(best_direct, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--mcp", type=int, default=0, metavar="M", help="also time M MCP calls via the proxy"
    )
    args = parser.parse_args()
    out = asyncio.run(measure(args.n))
    if args.mcp:
        from _mcp_bench import measure as measure_mcp

        out |= asyncio.run(measure_mcp(args.mcp))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
