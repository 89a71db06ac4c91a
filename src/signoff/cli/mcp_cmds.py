"""``signoff mcp-proxy``: the MCP gateway as a command."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from signoff.cli._common import ConfigOption, DbOption, _config, _run, _settings, app
from signoff.errors import (
    SignoffError,
)

if TYPE_CHECKING:
    pass


@app.command("mcp-proxy")
def mcp_proxy(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- COMMAND...",
            help="The upstream MCP server to start on stdio (after --), unless --upstream.",
            show_default=False,
        ),
    ] = None,
    upstream_url: Annotated[
        str | None,
        typer.Option("--upstream", help="The upstream MCP server's streamable HTTP URL."),
    ] = None,
    config: ConfigOption = None,
    db: DbOption = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Keep approvals on this signoff server instead of --db."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="With --url: the agent's token (env SIGNOFF_TOKEN)."),
    ] = None,
    agent: Annotated[
        str, typer.Option("--agent", help="The agent named in requests (embedded store).")
    ] = "mcp-proxy",
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", help="The run of calls that name none (default: fixed per upstream)."
        ),
    ] = None,
    hold: Annotated[
        float | None,
        typer.Option(
            "--hold",
            help="Answer a call still undecided after this many seconds with approval_pending "
            "(the model calls again later). Default: wait for the decision.",
        ),
    ] = None,
    transport: Annotated[
        str, typer.Option("--transport", help="How agents reach the proxy: stdio or http.")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="With --transport http: the interface.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="With --transport http: the port.", min=0, max=65535)
    ] = 8765,
) -> None:
    """Serve MCP in front of another MCP server; its tool calls run only when signoff lets them.

    - an upstream started on stdio: `signoff mcp-proxy [--config FILE] -- COMMAND ARGS...`
    - an upstream on streamable HTTP: `signoff mcp-proxy [--config FILE] --upstream URL`

    Tools without a policy in the config ask a human. On stdio, standard output carries
    MCP and nothing else.
    """
    from signoff.gate import Gate
    from signoff.integrations.mcp import Upstream, default_run_id, serve  # or MissingDependency
    from signoff.models import Run

    if transport not in ("stdio", "http"):
        raise SignoffError(f"--transport must be stdio or http, not {transport!r}")
    upstream = Upstream(command=tuple(command or ()), url=upstream_url)
    settings = _settings()
    cfg = _config(config)
    if url is not None:
        if not (token or settings.token):
            raise SignoffError("--url needs the agent's token: --token or SIGNOFF_TOKEN")
        gate = Gate(url, token=token or settings.token, config=cfg)
    else:
        gate = Gate(db or settings.db_url, config=cfg)
    run = Run(agent_id=agent, run_id=run_id or default_run_id(upstream))
    where = "stdio" if transport == "stdio" else f"http://{host}:{port}/mcp"

    def ready(gateway: Any) -> None:
        print(
            f"signoff mcp-proxy: {len(gateway.tools)} tool(s) of {upstream.label} on {where}",
            file=sys.stderr,
            flush=True,
        )

    _run(
        serve(
            gate,
            upstream,
            run=run,
            transport="stdio" if transport == "stdio" else "http",
            host=host,
            port=port,
            hold=hold,
            on_ready=ready,
        )
    )


# -- the demo ------------------------------------------------------------------------------
