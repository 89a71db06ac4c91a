"""Standing grants' commands: ``signoff grants [list]`` and ``signoff grants revoke ID``
(an approver's token, through the server's API). Grants are made with
``signoff approve ID --grant 1h[:tool]``."""

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

grants_app = typer.Typer(
    help="Standing grants: what is approved without asking, until when; revoke one.",
    cls=ListByDefault,
)
app.add_typer(grants_app, name="grants")


@grants_app.command("list")
def list_grants(
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    tool: Annotated[str | None, typer.Option("--tool", help="Only this tool's.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Revoked and expired ones too, not only live ones.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """List standing grants, newest first (the live ones, unless --all)."""
    filters: dict[str, Any] = {"agent": agent, "tool": tool, "limit": limit}
    if not all_:
        filters["active"] = True
    filters = {k: v for k, v in filters.items() if v is not None}
    items = _run(_with_client(url, token, lambda c: c.grants(**filters)))
    if json_out:
        _print_json(items)
        return
    if not items:
        console.print("no grants")
        return
    for g in items:
        state = "live" if g["active"] else ("revoked" if g.get("revoked_at") else "expired")
        scope = "identical calls" if g["scope"] == "identical" else "any call"
        line = (
            f"{g['id']}  {state:<7}  {printable(g['agent'])}  {printable(g['tool'])}  {scope}  "
            f"until {g['expires_at']}  by {printable(g['granted_by'])}"
        )
        console.print(line, markup=False, highlight=False)


@grants_app.command("revoke")
def revoke(
    grant_id: Annotated[str, typer.Argument(help="The grant's id (grt_…).")],
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Revoke a grant: at once, on every replica (its granter or the highest role)."""
    found = _run(_with_client(url, token, lambda c: c.revoke_grant(grant_id)))
    if json_out:
        _print_json(found)
    else:
        console.print(f"{found['id']} is revoked", markup=False, highlight=False)
