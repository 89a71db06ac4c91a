"""What every command shares: the app, its options, the settings, the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from signoff._version import __version__
from signoff.config import DEFAULT_DB_URL, Config, Settings, load_config
from signoff.errors import (
    UsageError,
)
from signoff.safe_text import printable

if TYPE_CHECKING:
    # typer's own click (newer typers vendor it); only a name for the type checker
    from typer._click.core import Context as ClickContext

    from signoff.client import Client


T = TypeVar("T")

app = typer.Typer(
    name="signoff",
    help="A human sign-off in front of an AI agent's risky tool calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown, not Rich markup: Rich took a config section in brackets ("[server]") for a
    # tag and dropped it, and kept a docstring's line breaks in the command lists
    rich_markup_mode="markdown",
)
audit_app = typer.Typer(help="Check or export the tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
checkpoint_app = typer.Typer(
    help="The audit log's signed checkpoints, to keep away from the server.", no_args_is_help=True
)
audit_app.add_typer(checkpoint_app, name="checkpoint")
runs_app = typer.Typer(help="Durable agent runs: list them, resume one.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


class ListByDefault(TyperGroup):
    """A command group whose bare form, or one that starts with an option, is its ``list``
    command: ``signoff grants --all`` is ``signoff grants list --all`` (only ``--help``
    stays the group's)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] != "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"signoff {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """A human sign-off in front of an AI agent's risky tool calls."""


# soft_wrap: a line is the terminal's to wrap, never broken by us: what people copy (a
# digest, a link, a key) stays whole, and scripts read each line as it was written
console = Console(soft_wrap=True)
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


def _settings() -> Settings:
    return Settings.from_env()


def _config(path: str | None) -> Config:
    return load_config(path or _settings().config_path)


def _run(coro: Awaitable[T], *, fast_loop: bool = False) -> T:
    """Run ``coro`` to the end. ``fast_loop``: on uvloop where it is installed (uvicorn's
    ``standard`` extra brings it, where the platform has it): a long-running server's
    event loop and sockets take a third less of its time there."""
    factory = _uvloop_factory() if fast_loop else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_as_coroutine(coro))


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def resolve_token(url: str, token: str | None, settings: Settings) -> str:
    """--token, else SIGNOFF_TOKEN, else the sign-in `signoff login` stored for ``url``
    (refreshed when it is about to expire)."""
    from signoff.cli.credentials import access_token

    found = token or settings.token or await access_token(settings, url)
    if not found:
        raise UsageError(
            f"no token for {url}: run 'signoff login', or pass --token / set SIGNOFF_TOKEN"
        )
    return found


async def _with_client(
    url: str | None, token: str | None, fn: Callable[[Client], Awaitable[T]]
) -> T:
    from signoff.client import Client

    settings = _settings()
    server = (url or settings.server_url).rstrip("/")
    found = await resolve_token(server, token, settings)
    client = Client(server, found, user_agent=USER_AGENT)
    try:
        return await fn(client)
    finally:
        await client.aclose()


def _print_json(value: Any) -> None:
    # JSON escapes C0 controls itself; C1 and formatting characters are escaped here too
    print(printable(json.dumps(value, indent=2, ensure_ascii=False), one_line=False))


# -- the server ---------------------------------------------------------------------------
