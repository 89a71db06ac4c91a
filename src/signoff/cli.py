"""The ``signoff`` command (CONTRACT.md §1).

Every failure ends with one line on stderr, ``signoff: <what is wrong>``, and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.table import Table

from signoff._version import __version__
from signoff.config import DEFAULT_DB_URL, Config, Settings, data_dir, load_config
from signoff.errors import (
    ConfigError,
    InvalidArguments,
    NotFound,
    SignoffError,
    StoreError,
    UsageError,
)
from signoff.models import ApprovalRequest
from signoff.safe_text import printable, redact, shown
from signoff.types import JSONObject

if TYPE_CHECKING:
    from signoff.client import Client

T = TypeVar("T")

app = typer.Typer(
    name="signoff",
    help="A human sign-off in front of an AI agent's risky tool calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="Check or export the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
runs_app = typer.Typer(help="Durable agent runs: list them, resume one.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

console = Console()
USER_AGENT = f"signoff-cli/{__version__}"

# typer vendors its own click in newer releases; accept either family of usage errors
_USAGE_ERRORS: tuple[type[click.ClickException], ...] = (click.ClickException,)
with contextlib.suppress(ImportError):
    from typer._click.exceptions import ClickException as _TyperClickException

    _USAGE_ERRORS = (click.ClickException, _TyperClickException)  # type: ignore[assignment]

DbOption = Annotated[
    str | None, typer.Option("--db", help=f"Store URL (env SIGNOFF_DB; default {DEFAULT_DB_URL}).")
]
ConfigOption = Annotated[
    str | None, typer.Option("--config", help="Policy file, TOML (env SIGNOFF_CONFIG).")
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="The server (env SIGNOFF_URL; default http://127.0.0.1:8000)."),
]
TokenOption = Annotated[str | None, typer.Option("--token", help="Your token (env SIGNOFF_TOKEN).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SeenOption = Annotated[
    str | None,
    typer.Option(
        "--seen",
        help="The args_digest you reviewed ('signoff show' prints it): refuse if it changed.",
    ),
]


@app.callback()
def _root() -> None:
    """A human sign-off in front of an AI agent's risky tool calls."""


def _settings() -> Settings:
    return Settings.from_env()


def _config(path: str | None) -> Config:
    return load_config(path or _settings().config_path)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(_as_coroutine(coro))


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _client(url: str | None, token: str | None) -> Client:
    from signoff.client import Client

    settings = _settings()
    token = token or settings.token
    if not token:
        raise UsageError("no token: pass --token or set SIGNOFF_TOKEN (see 'signoff token')")
    return Client(url or settings.server_url, token, user_agent=USER_AGENT)


async def _with_client(
    url: str | None, token: str | None, fn: Callable[[Client], Awaitable[T]]
) -> T:
    client = _client(url, token)
    try:
        return await fn(client)
    finally:
        await client.aclose()


def _print_json(value: Any) -> None:
    # JSON escapes C0 controls itself; C1 and formatting characters are escaped here too
    print(printable(json.dumps(value, indent=2, ensure_ascii=False), one_line=False))


# -- the server ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the approval server: HTTP API, live events, dashboard."""
    import uvicorn

    from signoff.connect import connect
    from signoff.server.app import create_app, key_for
    from signoff.server.http import server_config
    from signoff.service import ApprovalService

    settings = _settings()
    db_url = db or settings.db_url
    cfg = _config(config)
    backends = connect(db_url)
    service = ApprovalService(backends.store, backends.bus, config=cfg)
    application = create_app(service, key=key_for(data_dir(db_url), settings.secret), config=cfg)
    server = uvicorn.Server(server_config(application, host=host, port=port))

    async def run() -> None:
        # open the store first: a database that is down is one clear line, not a traceback
        # from inside the server's startup (the app's lifespan finds it started)
        try:
            await service.start()
        except SignoffError as exc:
            raise StoreError(f"{exc.message} (store: {redact(db_url)})") from exc
        console.print(
            f"signoff {__version__} serving on http://{host}:{port} (store: {redact(db_url)})"
        )
        try:
            await server.serve()
        finally:
            await service.aclose()

    _run(run())
    if not server.started:
        raise SignoffError(f"could not listen on {host}:{port} (is the port in use?)")


@app.command()
def token(
    sub: Annotated[str | None, typer.Option("--sub", help="The approver's name.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="The approver's role.")] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="An agent's name (agent token).")
    ] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lifetime, e.g. 1h, 24h, 30m.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a JWT signed with the server's key: an approver's or an agent's."""
    from signoff.auth import Issuer, load_or_create_key

    if (agent is None) == (sub is None):
        raise UsageError("give either --sub NAME --role ROLE (an approver) or --agent NAME")
    settings = _settings()
    cfg = _config(config)
    key = load_or_create_key(data_dir(db or settings.db_url), settings.secret)
    issuer = Issuer(key, cfg.auth, cfg.roles)
    if agent is not None:
        if role is not None:
            raise UsageError("an agent token has no role; drop --role")
        print(issuer.token(agent, kind="agent", ttl=ttl or "24h"))
    else:
        if role is None:
            raise UsageError("an approver token needs --role")
        assert sub is not None
        print(issuer.token(sub, kind="approver", role=role, ttl=ttl or "1h"))


@app.command("login-link")
def login_link(
    sub: Annotated[str, typer.Option("--sub", help="Who signs in (the approver's name).")],
    role: Annotated[str, typer.Option("--role", help="The approver's role.")],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The dashboard's address (env SIGNOFF_URL; else [server] public_url; "
            "default http://127.0.0.1:8000).",
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Print a single-use link (valid 10 minutes) that signs a person in to the dashboard."""
    from signoff.auth import load_or_create_key
    from signoff.config import DEFAULT_SERVER_URL
    from signoff.server.session import login_link as make_link

    settings = _settings()
    cfg = _config(config)
    cfg.roles.check(role)
    key = load_or_create_key(data_dir(db or settings.db_url), settings.secret)
    # a SIGNOFF_URL that was set wins; otherwise the address the config says people use
    from_env = settings.server_url if settings.server_url != DEFAULT_SERVER_URL else None
    base = url or from_env or cfg.server.public_url or DEFAULT_SERVER_URL
    print(make_link(key, cfg, base, sub, role))


# -- reading ------------------------------------------------------------------------------


def _table(requests: list[ApprovalRequest]) -> Table:
    from signoff._util import compact_duration, now_utc

    table = Table(show_lines=False)
    table.add_column("id", no_wrap=True, min_width=26)  # ids are copied: never cut them
    for column in ("tool", "risk", "agent", "reason", "expires in"):
        table.add_column(column)
    now = now_utc()
    for request in requests:
        left = (request.expires_at - now).total_seconds()
        table.add_row(
            request.id,
            shown(request.tool),
            request.risk.value,
            shown(request.run.agent_id),
            shown(request.reason or ""),
            compact_duration(left) if left > 0 else "expired",
        )
    return table


@app.command()
def pending(url: UrlOption = None, token: TokenOption = None, json_out: JsonOption = False) -> None:
    """List the requests waiting for a decision."""

    async def fetch(client: Client) -> list[ApprovalRequest]:
        items: list[ApprovalRequest] = []
        cursor = None
        while True:
            page = await client.list_requests(status="pending", limit=200, cursor=cursor)
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return items

    requests = _run(_with_client(url, token, fetch))
    if json_out:
        _print_json([r.model_dump(mode="json") for r in requests])
    elif not requests:
        console.print("Nothing is waiting for a decision.")
    else:
        console.print(_table(requests))


@app.command()
def show(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id.")],
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show one request: arguments, reason, policy, decisions, outcome."""
    from signoff._util import now_utc
    from signoff.channels.console import show as show_request

    request = _run(_with_client(url, token, lambda c: c.get(request_id)))
    if json_out:
        _print_json(request.model_dump(mode="json"))
        return
    show_request(request, console, now_utc())
    console.print(f"Status: [bold]{request.status.value}[/]")
    console.print(f"Arguments digest: {request.args_digest} (approve --seen checks it)")
    for d in request.decisions:
        edits = f" with {json.dumps(d.modified_args)}" if d.modified_args else ""
        reason = f": {d.reason}" if d.reason else ""
        console.print(
            shown(
                f"  {d.decision.value}{edits} by {d.by} ({d.role}) via {d.via} at "
                f"{d.at:%Y-%m-%d %H:%M:%S}{reason}"
            )
        )
    if request.outcome is not None:
        console.print(
            shown(f"Outcome: {request.outcome.status} {json.dumps(request.outcome.detail)}")
        )


# -- deciding -----------------------------------------------------------------------------


def parse_sets(pairs: list[str]) -> JSONObject:
    """``--set amount=100 --set note="hi"`` → ``{"amount": 100, "note": "hi"}``."""
    from signoff.channels.console import parse_value

    edits: JSONObject = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidArguments(f"malformed --set {pair!r}: use --set name=value")
        edits[name.strip()] = parse_value(value)
    return edits


def _decided(request: ApprovalRequest, json_out: bool) -> None:
    if json_out:
        _print_json(request.model_dump(mode="json"))
        return
    if request.status.value == "pending":
        approvals = len(request.approvals)
        console.print(
            f"{request.id}: your approval is recorded ({approvals}/{request.policy.quorum}); "
            "it needs more approvals"
        )
    else:
        console.print(f"{request.id}: {request.status.value}")


@app.command()
def approve(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Approve with a changed argument: name=value (repeatable)."),
    ] = None,
    seen: SeenOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Approve a request (with --set to change arguments first).

    The approval counts for the arguments the request has when this command reads it (or
    those of --seen DIGEST, the args_digest 'signoff show' printed); if another approver
    changes them first, the approval is refused and nothing is approved."""
    edits = parse_sets(set_ or []) or None

    async def go(client: Client) -> ApprovalRequest:
        digest = seen or (await client.get(request_id)).args_digest
        return await client.decide(
            request_id, "approve", reason=reason, modified_args=edits, seen_digest=digest
        )

    request = _run(_with_client(url, token, go))
    _decided(request, json_out)


@app.command()
def reject(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: the model is told this.")],
    seen: SeenOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Reject a request; the reason goes back to the model."""

    async def go(client: Client) -> ApprovalRequest:
        digest = seen or (await client.get(request_id)).args_digest
        return await client.decide(request_id, "reject", reason=reason, seen_digest=digest)

    request = _run(_with_client(url, token, go))
    _decided(request, json_out)


@app.command()
def watch(url: UrlOption = None, token: TokenOption = None) -> None:
    """Show each new request as it arrives and decide it at the prompt."""
    from signoff.channels.watch import watch as run_watch

    _run(_with_client(url, token, lambda c: run_watch(c, console)))


# -- audit ---------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    url: UrlOption = None, token: TokenOption = None, json_out: JsonOption = False
) -> None:
    """Check that the audit chain is intact."""
    result = _run(_with_client(url, token, lambda c: c.verify_audit()))
    if json_out:
        _print_json(result.to_dict())
    elif result.ok:
        console.print(
            shown(f"The audit chain is intact: {result.events} events, head {result.head}")
        )
    else:
        bad = result.first_bad or {}
        print(
            printable(
                f"signoff: the audit chain is broken at event {bad.get('seq')}: {bad.get('reason')}"
            ),
            file=sys.stderr,
        )
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="Output format: jsonl.")] = "jsonl",
    request_id: Annotated[
        str | None, typer.Option("--request", help="Only this request's events.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print every audit event, one JSON object per line, in chain order."""
    if fmt != "jsonl":
        raise ConfigError(f"unknown format {fmt!r}: use jsonl")

    async def export(client: Client) -> None:
        after = 0
        while True:
            page = await client.audit_events(request_id=request_id, after=after, limit=1000)
            for event in page.events:
                line = json.dumps(event.to_dict(), ensure_ascii=False)
                sys.stdout.write(printable(line) + "\n")
            if page.next_after is None:
                return
            after = page.next_after

    _run(_with_client(url, token, export))


# -- durable runs --------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="running or finished.")] = None,
    json_out: JsonOption = False,
) -> None:
    """List the durable runs in the store, most recent first."""
    from signoff.connect import connect
    from signoff.stores.base import RunQuery

    async def fetch() -> list[Any]:
        store = connect(db or _settings().db_url).store
        async with store:
            return await store.list_runs(RunQuery(status=status, limit=200))

    runs = _run(fetch())
    if json_out:
        _print_json([r.model_dump(mode="json") for r in runs])
        return
    table = Table()
    for column in ("run", "agent", "status", "provider", "turns", "updated", "app (hint)"):
        table.add_column(column, no_wrap=column == "run")
    for r in runs:
        updated = f"{r.updated_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(
            *(
                printable(value)
                for value in (r.run_id, r.agent_id, r.status, r.provider, str(r.turns), updated)
            ),
            printable(r.app or ""),
        )
    console.print(table if runs else "No runs.")


@runs_app.command("resume")
def runs_resume(
    run_id: Annotated[str, typer.Argument(metavar="ID", help="The run's id.")],
    app_spec: Annotated[
        str | None,
        typer.Option("--app", help="module:factory giving the client, gate and tools."),
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", help="The run's agent, where several used its id.")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Continue a run from its last checkpoint: waits for pending decisions, runs each
    approved tool once, and carries the conversation on to the model's final answer.

    The code it imports comes only from you: --app, or the run's recorded app when that is
    listed in the config's [runs] apps. A run's recorded app was written by its agent."""
    from signoff.connect import connect
    from signoff.integrations.resume import resume
    from signoff.stores.base import RunQuery

    cfg = _config(config)

    async def go() -> str:
        spec, agent_id = app_spec, agent
        if spec is None:
            store = connect(db or _settings().db_url).store
            async with store:
                found = await store.list_runs(RunQuery(run_id=run_id, owner=agent, limit=2))
            if not found:
                raise NotFound(f"no run {run_id} in {redact(db or _settings().db_url)}")
            if len(found) > 1:
                agents = ", ".join(sorted(r.owner for r in found))
                raise UsageError(f"several agents have a run {run_id} ({agents}): pass --agent")
            record = found[0]
            if record.app is None:
                raise UsageError(f"run {run_id} records no app; pass --app module:factory")
            if record.app not in cfg.runs.apps:
                raise SignoffError(
                    f"run {run_id} names the app {printable(record.app)!r}, written by the agent "
                    "that ran it, which is not in [runs] apps: pass --app module:factory, or "
                    "list it in the config's [runs] apps"
                )
            spec, agent_id = record.app, record.owner
        result = await resume(run_id, app=spec, agent_id=agent_id, allowed_apps=cfg.runs.apps)
        return result.final_text

    text = _run(go())
    console.print(printable(text), markup=False, soft_wrap=True)


# -- the MCP gateway -----------------------------------------------------------------------


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
    port: Annotated[int, typer.Option(help="With --transport http: the port.")] = 8765,
) -> None:
    """Serve MCP in front of another MCP server; its tool calls run only when signoff lets them.

    signoff mcp-proxy [--config FILE] -- COMMAND ARGS...   (an upstream started on stdio)
    signoff mcp-proxy [--config FILE] --upstream URL       (an upstream on streamable HTTP)

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


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the server and dashboard.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    db: DbOption = None,
    terminal: Annotated[
        bool, typer.Option("--terminal", help="Decide at this terminal instead: no server.")
    ] = False,
    role: Annotated[str, typer.Option(help="With --terminal: the role you decide with.")] = "admin",
) -> None:
    """Run the demo: the server and a demo agent whose risky calls wait for you to decide.

    Prints a sign-in link to the dashboard and an approver token, then runs until you stop
    it. Offline it uses a scripted model; with ANTHROPIC_API_KEY or OPENAI_API_KEY set, a
    real one.
    """
    settings = _settings()
    if terminal:
        from signoff.demo.terminal import run_terminal_demo

        _run(run_terminal_demo(db or settings.db_url, role, console))
        return
    from signoff.demo.server import run_demo

    _run(run_demo(db or settings.db_url, host, port, settings, console))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command; turn every error into one line and an exit code."""
    try:
        code = app(args=argv, prog_name="signoff", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        message = exc.format_message()
        if message:  # empty after "no arguments: here is the help"
            print(f"signoff: {printable(message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SignoffError as exc:
        # one line: a driver's multi-line message is joined, control characters escaped
        print(f"signoff: {printable(' '.join(exc.message.split()))}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
