"""An agent in its own process that reaches the upstream MCP server through
``signoff mcp-proxy`` on stdio, for the crash test.

The gateway keeps approvals in the SQLite file $AGENT_DB, with the policy file
$SIGNOFF_TEST_CONFIG; the upstream is :mod:`tests.helpers.mcp_upstream` (its log:
$MCP_EXEC_LOG).

Usage: python -m tests.helpers.mcp_agent PATH   (calls delete_file on PATH; prints the result)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters


def proxy_parameters(*flags: str) -> StdioServerParameters:
    """``signoff mcp-proxy FLAGS -- python -m tests.helpers.mcp_upstream`` on stdio."""
    env = {
        key: os.environ[key]
        for key in ("PYTHONPATH", "MCP_EXEC_LOG", "HOME", "PATH")
        if key in os.environ
    }
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "signoff", "mcp-proxy", *flags, "--", sys.executable, "-m",
              "tests.helpers.mcp_upstream"],
        env=env,
    )  # fmt: skip


async def main(path: str) -> None:
    flags = ["--db", f"sqlite:///{os.environ['AGENT_DB']}"]
    flags += ["--config", os.environ["SIGNOFF_TEST_CONFIG"], "--agent", "coder"]
    async with Client(proxy_parameters(*flags)) as agent:
        result = await agent.call_tool("delete_file", {"path": path})
    print(json.dumps(result.model_dump(mode="json", by_alias=True)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
