"""What the gate costs a call its policy lets straight through.

    python bench/passthrough.py --n 200000 [--frameworks --framework-n 1000] [--mcp 2000]

Prints {"n", "gated_us_per_call", "direct_us_per_call"} (docs/benchmarks.md): the best of five
timed runs of N awaited calls each, gated and direct. With ``--frameworks`` the line also
has ``"frameworks"``: for LangGraph, Pydantic AI and the OpenAI Agents SDK, one tool call
and one one-call agent run, each with the tool behind signoff's adapter and without it,
side by side, in µs (``--framework-n`` agent runs and ten times as many tool calls per side,
the best of ten alternating blocks); see bench/_frameworks.py. With ``--mcp M`` (needs the
``mcp`` extra) it adds, side by side, M MCP tool calls through ``signoff mcp-proxy`` and
straight to the upstream server, over stdio and in process (see ``_mcp_bench.py``).
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
        "--frameworks", action="store_true", help="also measure the agent framework adapters"
    )
    parser.add_argument("--framework-n", type=int, default=1000)
    parser.add_argument(
        "--mcp", type=int, default=0, metavar="M", help="also time M MCP calls via the proxy"
    )
    args = parser.parse_args()
    result: dict[str, Any] = dict(asyncio.run(measure(args.n)))
    if args.frameworks:
        from _frameworks import measure_frameworks

        result["frameworks"] = asyncio.run(measure_frameworks(args.framework_n))
    if args.mcp:
        from _mcp_bench import measure as measure_mcp

        result |= asyncio.run(measure_mcp(args.mcp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
