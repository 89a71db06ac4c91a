"""``signoff policy replay``: what a candidate policy file would have done with the calls
already made (:mod:`signoff.replay`), read from a store (``--db``) or a server (``--url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from signoff.cli._common import (
    DbOption,
    JsonOption,
    TokenOption,
    UrlOption,
    _print_json,
    _run,
    _settings,
    _with_client,
    app,
    console,
)
from signoff.config import load_config
from signoff.errors import UsageError
from signoff.models import ApprovalRequest
from signoff.replay import CHANGES, ReplayReport, cutoff, replay, replay_store
from signoff.safe_text import printable
from signoff.shadow import ShadowRecord

if TYPE_CHECKING:
    from signoff.client import Client

policy_app = typer.Typer(
    help="Try a policy file against the stored history before using it.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")


@policy_app.command("replay")
def policy_replay(
    config: Annotated[
        str, typer.Option("--config", help="The candidate policy file (TOML) to replay.")
    ],
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only calls made in this period, e.g. 7d, 24h (default: all)."
        ),
    ] = None,
    db: DbOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Which past calls the candidate would have run, asked about or denied, against what
    happened. Reads only: nothing is changed."""
    if db is not None and (url is not None or token is not None):
        raise UsageError("give --db (read a store) or --url/--token (ask a server), not both")
    # the candidate is checked before any history is read: a bad file costs nothing
    candidate = load_config(config)
    start = cutoff(since, datetime.now(UTC))

    async def from_store() -> ReplayReport:
        from signoff.connect import connect

        store = connect(db or _settings().db_url, existing=True).store
        async with store:
            return await replay_store(store, candidate, start)

    async def from_server(client: Client) -> ReplayReport:
        return await replay(candidate, server_history(client, start), since=start)

    if url is not None or token is not None:
        report = _run(_with_client(url, token, from_server))
    else:
        report = _run(from_store())
    if json_out:
        _print_json(report.to_json())
    else:
        _print(report)


async def server_history(
    client: Client, since: datetime | None
) -> AsyncIterator[ApprovalRequest | ShadowRecord]:
    """The requests (newest first, down to ``since``) and the shadow records, read page by
    page through the API (the shadow records need an auditor's token)."""
    cursor: str | None = None
    while True:
        page = await client.list_requests(limit=200, cursor=cursor)
        for request in page.items:
            if since is not None and request.created_at < since:
                cursor = None
                break
            yield request
        else:
            cursor = page.next_cursor
        if cursor is None:
            break
    after = 0
    while True:
        events = await client.audit_events(after=after, limit=1000)
        for event in events.events:
            record = ShadowRecord.from_event(event)
            if record is not None and (since is None or record.at >= since):
                yield record
        if not events.events or events.next_after is None:
            return
        after = events.next_after


def _print(report: ReplayReport) -> None:
    period = "all the history" if report.since is None else f"since {report.since:%Y-%m-%d %H:%M}"
    console.print(f"{report.total} past calls replayed ({period})", markup=False, highlight=False)
    table = Table()
    for column in ("tool", "run", "ask", "deny", "code", "what happened"):
        table.add_column(column)
    for tool in sorted(report.counts):
        counts = report.counts[tool]
        happened = ", ".join(f"{k} {v}" for k, v in sorted(report.happened[tool].items()))
        table.add_row(
            printable(tool),
            *(str(counts[v]) for v in ("run", "ask", "deny", "code")),
            printable(happened),
        )
    if report.total:
        console.print(table)
    if not report.changed:
        console.print("No call would be treated differently.", markup=False, highlight=False)
        return
    for kind, label in CHANGES.items():
        calls = [c for c in report.changes if c.change == kind]
        if not report.changed[kind]:
            continue
        loud = "!! " if kind == "run_rejected" else ""
        console.print(
            f"{loud}{report.changed[kind]} {label}:", markup=False, highlight=False, style="bold"
        )
        for c in calls:
            terms = f" (min_role {c.min_role}, quorum {c.quorum})" if kind == "stricter" else ""
            note = f" [{c.note}]" if c.note else ""
            line = (
                f"  {c.id}  {printable(c.tool)}  agent {printable(c.agent_id)}  "
                f"{c.at:%Y-%m-%d %H:%M}  was {c.happened}{terms}{printable(note)}"
            )
            console.print(line, markup=False, highlight=False)
    if not report.listed_all:
        console.print(
            f"(the first {len(report.changes)} listed; --json for the same)",
            markup=False,
            highlight=False,
        )
