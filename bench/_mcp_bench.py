"""What ``signoff mcp-proxy`` adds to an MCP tool call its policy lets through.

Measured side by side, best of three timed runs of N sequential ``tools/call`` each:

- over stdio, as agents use it: an MCP client → the upstream server's process, against
  an MCP client → ``signoff mcp-proxy`` (a process, embedded store in memory) → the
  upstream server's process;
- in process (no pipes, no JSON-RPC framing), which leaves the gateway's own work: the
  gate's policy check and the second MCP hop.

Run as a script, this module is the upstream MCP server (stdio).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer

from signoff import Gate, Run
from signoff.integrations.mcp import McpGateway

HERE = Path(__file__).resolve()
POLICY = '[[tools]]\nname = "lookup_order"\nwhen = false\n'
ARGS = {"order_id": "ORD-1"}


def upstream() -> MCPServer:
    server = MCPServer("orders")

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order."""
        return f"{order_id}: delivered"

    return server


async def timed(client: Client, n: int) -> float:
    """Best microseconds per call of three runs of ``n`` sequential calls."""
    await client.call_tool("lookup_order", ARGS)  # warm: listing, caches, first import
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            result = await client.call_tool("lookup_order", ARGS)
            assert not result.is_error, result
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def stdio(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=list(args))


async def measure(n: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="signoff-bench-mcp-"))
    config = folder / "policy.toml"
    config.write_text(POLICY)
    proxy = ["-m", "signoff", "mcp-proxy", "--db", "memory://", "--config", str(config)]

    async with Client(stdio(str(HERE))) as direct:
        stdio_direct = await timed(direct, n)
    async with Client(stdio(*proxy, "--", sys.executable, str(HERE))) as proxied:
        stdio_proxy = await timed(proxied, n)

    server = upstream()
    async with Client(server) as direct:
        inproc_direct = await timed(direct, n)
    gate = Gate("memory://", config=str(config))
    async with gate, Client(server) as up:
        gateway = McpGateway(gate, up, run=Run(agent_id="bench", run_id="bench"))
        async with Client(gateway.server()) as proxied:
            inproc_proxy = await timed(proxied, n)

    return {
        "mcp_n": n,
        "mcp_stdio_direct_us_per_call": round(stdio_direct, 1),
        "mcp_stdio_proxy_us_per_call": round(stdio_proxy, 1),
        "mcp_inproc_direct_us_per_call": round(inproc_direct, 1),
        "mcp_inproc_proxy_us_per_call": round(inproc_proxy, 1),
    }


if __name__ == "__main__":
    upstream().run()
