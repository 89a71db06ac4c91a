"""An approver's commands: pending, show, approve, reject, respond, watch."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from signoff.cli._common import (
    JsonOption,
    SeenOption,
    TokenOption,
    UrlOption,
    _print_json,
    _run,
    _with_client,
    app,
    console,
)
from signoff.errors import (
    InvalidArguments,
)
from signoff.models import ApprovalRequest
from signoff.safe_text import shown
from signoff.types import JSONObject

if TYPE_CHECKING:
    from signoff.client import Client


def _table(requests: list[ApprovalRequest], width: int) -> Table:
    """The queue, one line a request at ``width`` columns: the reason takes the room the
    other columns leave and is cut with "…" where it is longer (`signoff show` has all of
    it); the id is never cut (it is copied into the next command)."""
    from rich.cells import cell_len

    from signoff._util import compact_duration, now_utc

    now = now_utc()
    headers = ("id", "tool", "risk", "agent", "reason", "expires in")
    rows = []
    for request in requests:
        left = (request.expires_at - now).total_seconds()
        rows.append(
            (
                request.id,
                shown(request.tool),
                request.risk.value,
                shown(request.run.agent_id),
                shown(request.reason or ""),
                compact_duration(left) if left > 0 else "expired",
            )
        )
    widths = [
        max(cell_len(text) for text in (header, *(row[i] for row in rows)))
        for i, header in enumerate(headers)
    ]
    # each column has a space either side and a border after it, and the table one more
    room = width - (sum(widths) - widths[4]) - 3 * len(headers) - 1
    table = Table(show_lines=False)
    table.add_column("id", no_wrap=True, min_width=widths[0])
    for i, header in enumerate(headers[1:], start=1):
        if room < 12:  # too narrow for one line a request: every column but the id wraps
            table.add_column(header)
        elif header == "reason":
            table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=room)
        else:
            table.add_column(header, no_wrap=True, min_width=widths[i])
    for row in rows:
        table.add_row(*row)
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
        console.print(_table(requests, console.width))


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
    if request.response is not None:
        console.print(shown(f"Response (the model's answer): {json.dumps(request.response)}"))


# -- deciding -----------------------------------------------------------------------------


def parse_sets(pairs: list[str]) -> JSONObject:
    """``--set amount=100 --set note="hi"`` → ``{"amount": 100, "note": "hi"}``."""
    from signoff.decisions import json_or_text

    edits: JSONObject = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidArguments(f"malformed --set {pair!r}: use --set name=value")
        edits[name.strip()] = json_or_text(value)
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
    grant: Annotated[
        str | None,
        typer.Option(
            "--grant",
            metavar="TTL[:tool]",
            help="Also approve this agent's identical calls of the tool for TTL (1h, 30m, "
            "2d); with ':tool', any call of the tool. Not with --set.",
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Approve a request (with --set to change arguments first).

    The approval counts for the arguments the request has when this command reads it (or
    those of --seen DIGEST, the args_digest 'signoff show' printed); if another approver
    changes them first, the approval is refused and nothing is approved."""
    from signoff.grants import parse_cli

    edits = parse_sets(set_ or []) or None
    # checked here too, so a bad --grant fails before anything is sent
    asked = None if grant is None else parse_cli(grant)
    body = None if asked is None else {"ttl": asked.ttl_s, "scope": asked.scope}

    async def go(client: Client) -> ApprovalRequest:
        digest = seen or (await client.get(request_id)).args_digest
        return await client.decide(
            request_id,
            "approve",
            reason=reason,
            modified_args=edits,
            seen_digest=digest,
            grant=body,
        )

    request = _run(_with_client(url, token, go))
    _decided(request, json_out)
    if grant is not None and not json_out and request.decisions:
        console.print(f"granted: {request.decisions[-1].grant_id}")


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
def respond(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id.")],
    response: Annotated[
        str, typer.Option("--response", help="The tool's answer, as JSON: the model gets it.")
    ],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
    seen: SeenOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Answer a request in the tool's place: the tool does not run, and the model receives
    the response as its result (a policy's `decisions` must allow `respond`)."""
    from signoff.canonical import json_problem

    try:
        answer = json.loads(response)
    except ValueError as exc:
        raise InvalidArguments(f"--response is not JSON ({exc}); a string is '\"text\"'") from exc
    # refused here, not by the server: NaN is no JSON to send, and null is no answer
    if (problem := json_problem(answer)) is not None or answer is None:
        raise InvalidArguments(f"--response: {problem or 'null is no answer'}")

    async def go(client: Client) -> ApprovalRequest:
        digest = seen or (await client.get(request_id)).args_digest
        return await client.decide(
            request_id, "respond", reason=reason, seen_digest=digest, response=answer
        )

    request = _run(_with_client(url, token, go))
    _decided(request, json_out)


@app.command()
def watch(url: UrlOption = None, token: TokenOption = None) -> None:
    """Show each new request as it arrives and decide it at the prompt."""
    from signoff.channels.watch import watch as run_watch

    _run(_with_client(url, token, lambda c: run_watch(c, console)))


# -- audit ---------------------------------------------------------------------------------
