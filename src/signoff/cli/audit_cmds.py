"""The audit log's commands: verify, export."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from signoff.cli._common import (
    JsonOption,
    TokenOption,
    UrlOption,
    _print_json,
    _run,
    _with_client,
    audit_app,
    console,
)
from signoff.errors import (
    ConfigError,
)
from signoff.safe_text import printable, shown

if TYPE_CHECKING:
    from signoff.client import Client


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
