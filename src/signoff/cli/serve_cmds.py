"""Commands that run or configure the server: serve, token, login-link, demo."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from signoff._util import listen
from signoff._version import __version__
from signoff.cli._common import ConfigOption, DbOption, _config, _run, _settings, app, console
from signoff.connect import data_dir
from signoff.errors import (
    SignoffError,
    StoreError,
    UsageError,
)
from signoff.safe_text import redact

if TYPE_CHECKING:
    from signoff.config import Config, Settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: a free one).", min=0, max=65535)
    ] = 8000,
    db: DbOption = None,
    config: ConfigOption = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="text, or json: one JSON object per line, with the request id it is about.",
        ),
    ] = "text",
) -> None:
    """Run the approval server: HTTP API, live events, dashboard."""
    from signoff.jsonlog import configure

    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format is text or json, not {log_format!r}")
    # JSON lines are for a log pipeline: everything from INFO; text keeps the terminal quiet
    configure("json", logging.INFO) if log_format == "json" else configure("text", logging.WARNING)
    settings = _settings()
    db_url = db or settings.db_url
    cfg = _config(config)
    sock = listen(host, port)  # a port in use is one line, before anything starts
    port = sock.getsockname()[1]
    try:
        _serve(sock, host, port, db_url, cfg, settings)
    finally:
        sock.close()


def _serve(
    sock: socket.socket, host: str, port: int, db_url: str, cfg: Config, settings: Settings
) -> None:
    import uvicorn

    from signoff.connect import connect, signing_keys
    from signoff.delivery import ChannelRuntime, build_channels
    from signoff.server.app import create_app, key_for
    from signoff.server.http import server_config
    from signoff.service import ApprovalService

    backends = connect(db_url)
    keys = signing_keys(db_url, cfg, settings)
    service = ApprovalService(backends.store, backends.bus, config=cfg, keys=keys)
    # a channel misconfigured is a ConfigError now, before anything listens
    runtime = ChannelRuntime(service, build_channels(cfg)) if cfg.channels else None
    application = create_app(
        service,
        key=key_for(data_dir(db_url), settings.secret),
        config=cfg,
        channels=runtime,
        public_url=cfg.server.public_url or f"http://{host}:{port}",
    )
    # uvicorn's records go to the handler configure() set up, in the same format
    server = uvicorn.Server(server_config(application, host=host, port=port, log_config=None))

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
            await server.serve(sockets=[sock])
        finally:
            await service.aclose()

    _run(run(), fast_loop=True)
    if not server.started:
        raise SignoffError(f"the server did not start on {host}:{port}")


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


@app.command()
def demo(
    port: Annotated[
        int, typer.Option(help="Port for the server and dashboard.", min=0, max=65535)
    ] = 8000,
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
