"""A real MCP server (built with the ``mcp`` package) for the gateway's tests.

Its tools' side effects are lines appended to $MCP_EXEC_LOG, so a test can count how many
times, and with which arguments, each tool really ran:

- ``delete_file(path)``: destructive; the gateway's tests gate it;
- ``read_file(path)``: read-only (``readOnlyHint``); the tests' config lets it through;
- ``explode(reason)``: always fails (an ``isError`` result).

Usage: python -m tests.helpers.mcp_upstream            (stdio)
       python -m tests.helpers.mcp_upstream --http PORT (streamable HTTP on 127.0.0.1)
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build(log_path: str) -> MCPServer:
    server = MCPServer("files", instructions="A file server for the gateway's tests.")

    def ran(line: str) -> None:
        with open(log_path, "a") as log:
            log.write(line + "\n")

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
        meta={"example.com/owner": "tests"},
    )
    def delete_file(path: str) -> str:
        """Delete a file."""
        ran(f"delete_file {path}")
        return f"deleted {path}"

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def read_file(path: str) -> str:
        """Read a file."""
        ran(f"read_file {path}")
        return f"contents of {path}"

    @server.tool()
    def explode(reason: str) -> str:
        """Fail on purpose."""
        ran(f"explode {reason}")
        raise ToolError(f"exploded: {reason}")

    return server


def main(argv: list[str]) -> None:
    server = build(os.environ["MCP_EXEC_LOG"])
    if argv[:1] == ["--http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(argv[1]))
    else:
        server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
