"""An MCP gateway: an MCP server in front of another one, with the gate on every tool call.

    agent ──MCP──▶ McpGateway ──MCP──▶ upstream server (a command on stdio, or a URL)
                      │
                      └─ gate.authorize → run upstream with exactly final_args → gate.report

The gateway lists the upstream's tools as they are (names, descriptions, input and output
schemas, annotations, ``_meta``) and registers each with the gate as a JSON Schema tool. A
``tools/call`` goes upstream only when the gate lets it, with exactly the arguments that were
approved; anything else comes back as a tool result with ``isError: true`` whose text is the
not-run JSON (docs/guide.md), which the model can read. A tool with no policy in the code or the
config file asks a human: so do tools the operator never heard of.

Which request a call is, across retries and gateway restarts (MCP request ids are only
per connection):

- ``run_id``: ``_meta["signoff/runId"]`` when the client sends one, else the gateway's run
  (``signoff mcp-proxy --run-id``; by default one fixed per upstream, so a restarted gateway
  finds what the one before it left);
- ``tool_call_id``: the client's own id for the call, ``_meta["signoff/toolCallId"]`` or
  Claude Code's ``_meta["claudecode/toolUseId"]``. A retried call with the same id finds its
  request: still waiting, decided, or already run (then its recorded result is returned and
  the tool is not run again).
- Without a client id, the call is known by a digest of its tool and arguments: a retry finds
  the identical call's request while that request is still pending or approved and unused;
  once it has ended (run, refused, expired) the next identical call is a new request, so a
  human is asked again rather than an old answer reused.

``pip install 'signoff[mcp]'``; the command is ``signoff mcp-proxy`` (:mod:`signoff.cli`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from signoff._util import jsonable, listen
from signoff.canonical import digest
from signoff.errors import ConfigError, MissingDependency, Unavailable
from signoff.gate import Gate
from signoff.integrations._calls import CallFinder
from signoff.models import Run
from signoff.outcome import CallStatus, Outcome
from signoff.policy import Policy

try:
    from mcp import Client, MCPError, StdioServerParameters
    from mcp import types as mcp_types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
except ImportError as exc:
    raise MissingDependency("mcp", "mcp") from exc

__all__ = [
    "CALL_ID_META_KEYS",
    "RUN_ID_META_KEY",
    "McpGateway",
    "Upstream",
    "default_run_id",
    "serve",
]

log = logging.getLogger(__name__)

#: where a client may name its call, first match wins (Claude Code sends the second)
CALL_ID_META_KEYS = ("signoff/toolCallId", "claudecode/toolUseId")
#: where a client may name the run its calls belong to
RUN_ID_META_KEY = "signoff/runId"
#: keys of the upstream's own protocol bookkeeping, never passed on as the gateway's
_RESERVED_META = "io.modelcontextprotocol/"


@dataclass(frozen=True, slots=True)
class Upstream:
    """The MCP server behind the gateway: a command run on stdio, or a streamable HTTP URL.

    It is the operator's (command-line flags, config), never an agent's. A command inherits
    the gateway's environment, less signoff's own ``SIGNOFF_*`` variables (tokens, keys).
    """

    command: Sequence[str] = ()
    url: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.command and self.url is None:
            raise ConfigError("no upstream MCP server: give -- COMMAND ARGS… or --upstream URL")
        if self.command and self.url is not None:
            raise ConfigError("give the upstream MCP server as a command or as a URL, not both")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"the upstream URL must be http:// or https://, not {self.url!r}")

    @property
    def label(self) -> str:
        """What the upstream is, to show in messages: the program, or the URL without its
        user info and query (arguments and query strings may carry secrets)."""
        if self.url is None:
            return os.path.basename(self.command[0])
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def client(self) -> Client:
        if self.url is not None:
            return Client(self.url)
        environ = os.environ if self.env is None else self.env
        env = {k: v for k, v in environ.items() if not k.startswith("SIGNOFF_")}
        program, *args = self.command
        return Client(StdioServerParameters(command=program, args=args, env=env, cwd=self.cwd))


def default_run_id(upstream: Upstream) -> str:
    """A run id fixed for one upstream, so a restarted gateway finds its requests."""
    return "mcp-" + digest({"command": list(upstream.command), "url": upstream.url})[:16]


class McpGateway:
    """Gates the tools of one connected upstream MCP server.

    ``upstream`` is a connected :class:`mcp.Client`; ``run`` says whose calls these are
    (``agent_id``) and the run they belong to when the client names none. ``policies`` gives
    tools a policy in code; the gate's config file is the floor either way, and a tool with
    neither asks a human. ``hold``: answer a call nobody has decided after that many seconds
    with an ``approval_pending`` error the model can read (call again later: the request
    stays), for clients that give up on long requests; by default a call waits until it is
    decided or its policy's timeout.
    """

    def __init__(
        self,
        gate: Gate,
        upstream: Client,
        *,
        run: Run,
        policies: Mapping[str, Policy] | None = None,
        hold: float | None = None,
        name: str = "signoff-mcp-proxy",
    ) -> None:
        self.gate = gate
        self.hold = hold
        self.upstream = upstream
        self.run = run
        self.name = name
        self.policies = dict(policies or {})
        #: the upstream's tools as last listed, by name
        self.tools: dict[str, mcp_types.Tool] = {}
        self._finder = CallFinder(gate)

    # -- listing --------------------------------------------------------------------------

    async def refresh_tools(self) -> list[mcp_types.Tool]:
        """List the upstream's tools (every page) and put each behind the gate."""
        listed: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends must not hang the gateway
            page = await self.upstream.list_tools(cursor=cursor, cache_mode="refresh")
            listed.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        for tool in listed:
            self._register(tool)
        self.tools = {tool.name: tool for tool in listed}
        return listed

    def _register(self, tool: mcp_types.Tool) -> None:
        known = self.gate.tools.get(tool.name)
        if known is not None:
            if known.json_schema == tool.input_schema:
                return
            # the upstream changed the tool's schema: validate against the new one
            del self.gate.tools[tool.name]
        self.gate.add_tool(
            tool.name,
            input_schema=dict(tool.input_schema),
            description=tool.description or tool.name,
            policy=self.policies.get(tool.name),
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=await self.refresh_tools())

    # -- calling --------------------------------------------------------------------------

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        meta: Mapping[str, Any] = params.meta or {}
        return await self.call(params.name, params.arguments or {}, meta=meta)

    async def call(
        self, name: str, arguments: Mapping[str, Any], *, meta: Mapping[str, Any] | None = None
    ) -> mcp_types.CallToolResult:
        """Gate one ``tools/call``; the result for the client (never raises for a refusal)."""
        meta = meta or {}
        try:
            if name not in self.tools:
                await self.refresh_tools()  # a tool added upstream since the last listing
            if name not in self.tools:
                return _unknown_tool(name, arguments, sorted(self.tools))
            outcome = await self._authorize(name, dict(arguments), meta)
        except Exception as exc:
            # whatever went wrong, it is not an approval: the call does not go upstream
            log.exception("signoff: could not gate %s", name)
            return _error_text(
                {
                    "error": "approval_unavailable",
                    "message": f"the call was not run: approval could not be obtained ({exc})",
                    "tool": name,
                    "parameters": jsonable(dict(arguments)),
                }
            )
        if outcome.status is not CallStatus.AUTHORIZED:
            return _answer(outcome)
        return await self._forward(outcome)

    def _run_for(self, meta: Mapping[str, Any]) -> Run:
        run_id = meta.get(RUN_ID_META_KEY)
        if isinstance(run_id, str) and run_id:
            return self.run.model_copy(update={"run_id": run_id})
        return self.run

    async def _authorize(self, name: str, args: dict[str, Any], meta: Mapping[str, Any]) -> Outcome:
        call_id = next(
            (v for k in CALL_ID_META_KEYS if isinstance(v := meta.get(k), str) and v), None
        )
        run = self._run_for(meta)
        return await self._finder.authorize(name, args, run=run, call_id=call_id, hold=self.hold)

    async def _forward(self, outcome: Outcome) -> mcp_types.CallToolResult:
        """Run an authorized call upstream, once, with exactly its final arguments."""
        final = dict(outcome.final_args if outcome.final_args is not None else outcome.args)
        try:
            result = await self.upstream.call_tool(outcome.tool, final)
        except Exception as exc:
            # it may or may not have run upstream: record it as failed, never retry it here
            await self.gate.report(outcome, error=exc)
            message = str(exc) if isinstance(exc, MCPError) else repr(exc)
            return _error_text(
                {
                    "error": "upstream_failed",
                    "message": f"the upstream server failed: {message}",
                    "tool": outcome.tool,
                    "parameters": jsonable(final),
                }
            )
        recorded = _record(result)
        if result.is_error:
            done = await self.gate.report(outcome, error=UpstreamToolError(_text_of(result)))
        else:
            done = await self.gate.report(outcome, result=recorded)
        return _with_edit_note(_passed_on(result), done)

    # -- serving --------------------------------------------------------------------------

    def server(self) -> Server[Any]:
        """The MCP server the agent talks to (serve it on stdio or streamable HTTP)."""
        return Server(
            self.name,
            instructions=(
                "Tools here are those of the MCP server behind this gateway. Some calls wait "
                "for a person's approval; a refused call returns an error that says why."
            ),
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )


async def serve(
    gate: Gate,
    upstream: Upstream,
    *,
    run: Run,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    path: str = "/mcp",
    policies: Mapping[str, Policy] | None = None,
    hold: float | None = None,
    on_ready: Callable[[McpGateway], None] | None = None,
) -> None:
    """Connect to ``upstream`` and serve the gated gateway until the client goes (stdio) or
    the process is stopped (HTTP). ``on_ready`` is called once the upstream's tools are
    listed, before the first client is served. An upstream that cannot be started or
    reached is :class:`~signoff.errors.Unavailable`; a port that cannot be listened on,
    :class:`~signoff.errors.UsageError`, before the upstream is started."""
    listening = listen(host, port) if transport == "http" else None
    try:
        async with gate, contextlib.AsyncExitStack() as stack:
            try:
                client = await stack.enter_async_context(upstream.client())
                gateway = McpGateway(gate, client, run=run, policies=policies, hold=hold)
                await gateway.refresh_tools()
            except Exception as exc:
                cause = _first_leaf(exc)
                raise Unavailable(
                    f"the upstream MCP server ({upstream.label}) could not be reached: {cause!r}"
                ) from exc
            server = gateway.server()
            if on_ready is not None:
                on_ready(gateway)
            if transport == "stdio":
                from mcp.server.stdio import stdio_server

                async with stdio_server() as (read, write):
                    await server.run(read, write, server.create_initialization_options())
                return
            import uvicorn

            app = server.streamable_http_app(streamable_http_path=path, host=host)
            config = uvicorn.Config(
                app, host=host, port=port, log_level="warning", lifespan="on", ws="none"
            )
            assert listening is not None
            await uvicorn.Server(config).serve(sockets=[listening])
    finally:
        if listening is not None:
            listening.close()


def _first_leaf(exc: BaseException) -> BaseException:
    """The first error inside task-group wrappers (anyio raises exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class UpstreamToolError(Exception):
    """The upstream tool ran and answered with ``isError: true`` (the text is its content)."""


def _answer(outcome: Outcome) -> mcp_types.CallToolResult:
    """The result for a call that is not to go upstream now."""
    if outcome.status in (CallStatus.EXECUTED, CallStatus.FAILED) and outcome.request is not None:
        # the same call (same client id) ran before: its recorded result, not a second run
        recorded = outcome.result
        if isinstance(recorded, dict) and "content" in recorded:
            try:
                return mcp_types.CallToolResult.model_validate(recorded)
            except ValueError:
                pass
    if outcome.status in (CallStatus.SKIPPED, CallStatus.RESPONDED):
        # a hook's or an approver's answer in the tool's place: a result, not an error
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=outcome.to_model())]
        )
    return _error_text_raw(outcome.to_model())


def _unknown_tool(
    name: str, arguments: Mapping[str, Any], known: list[str]
) -> mcp_types.CallToolResult:
    return _error_text(
        {
            "error": "invalid_tool_call",
            "message": f"unknown tool {name!r}; the tools are: {', '.join(known) or 'none'}",
            "tool": name,
            "parameters": jsonable(dict(arguments)),
        }
    )


def _error_text(body: Mapping[str, Any]) -> mcp_types.CallToolResult:
    return _error_text_raw(json.dumps(body, ensure_ascii=False))


def _error_text_raw(text: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)], is_error=True
    )


def _record(result: mcp_types.CallToolResult) -> dict[str, Any]:
    """The upstream's answer as it is kept in the request's outcome."""
    return _passed_on(result).model_dump(mode="json", by_alias=True, exclude_none=True)


def _passed_on(result: mcp_types.CallToolResult) -> mcp_types.CallToolResult:
    """The upstream's answer without the upstream's own protocol ``_meta`` keys."""
    meta = {k: v for k, v in (result.meta or {}).items() if not k.startswith(_RESERVED_META)}
    return result.model_copy(update={"meta": meta or None})


def _text_of(result: mcp_types.CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
    return "\n".join(texts) or "the tool reported an error"


def _with_edit_note(result: mcp_types.CallToolResult, done: Outcome) -> mcp_types.CallToolResult:
    """Tell the model which arguments an approver changed (docs/guide.md), after the result."""
    if not done.modified_fields:
        return result
    note = done.to_model_json()
    approval = note.get("approval") if isinstance(note, dict) else None
    if approval is None:
        return result
    text = json.dumps({"approval": approval}, ensure_ascii=False)
    return result.model_copy(
        update={"content": [*result.content, mcp_types.TextContent(type="text", text=text)]}
    )
