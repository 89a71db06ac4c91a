"""The outbox's commands: ``signoff deliveries [list]`` and ``signoff deliveries retry ID``
(the highest role's token, through the server's API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from signoff.cli._common import (
    JsonOption,
    ListByDefault,
    TokenOption,
    UrlOption,
    _print_json,
    _run,
    _with_client,
    app,
    console,
)
from signoff.safe_text import printable

deliveries_app = typer.Typer(
    help="The outbox: what was sent to each channel, what failed; retry a delivery.",
    cls=ListByDefault,
)
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("list")
def list_deliveries(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel's.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request", help="Only this request's.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """List deliveries, newest first."""
    filters = {"status": status, "channel": channel, "request_id": request_id, "limit": limit}
    page = _run(_with_client(url, token, lambda c: c.deliveries(**filters)))
    items: list[dict[str, Any]] = page["items"]
    if json_out:
        _print_json(items)
        return
    if not items:
        console.print("no deliveries")
        return
    for d in items:
        error = f"  {printable(d['last_error'])}" if d.get("last_error") else ""
        line = (
            f"{d['id']}  {d['status']:<9}  {printable(d['channel'])}  {d['type']}  "
            f"{d['request_id']}  attempts {d['attempts']}{error}"
        )
        console.print(line, markup=False, highlight=False)


@deliveries_app.command("retry")
def retry(
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id (dlv_…).")],
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Try a failed delivery again now, with a fresh round of attempts."""
    found = _run(_with_client(url, token, lambda c: c.retry_delivery(delivery_id)))
    if json_out:
        _print_json(found)
    else:
        console.print(f"{found['id']} is due again", markup=False, highlight=False)
