"""``signoff watch``: the seed guides' approval client, against a signoff server.

Each new request is shown as it arrives (tool, arguments, reason, risk, expiry) and decided
at the prompt: approve, reject with a reason, or edit. The event stream is read in the
background while you answer, and resumed after a dropped connection from the last event
seen, so nothing is missed and nothing is shown twice.
"""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console

from signoff.channels.console import Answer, decide_at_prompt
from signoff.client import Client
from signoff.errors import SignoffError, Unavailable
from signoff.events import EventType
from signoff.models import ApprovalRequest, Status
from signoff.safe_text import shown


async def _follow(
    client: Client, queue: asyncio.Queue[str], console: Console, opened: asyncio.Event
) -> None:
    """Put the id of every new request on ``queue``, across reconnects; ``opened`` is set
    when the stream first opens."""
    last: int | None = None
    delay = 0.5
    while True:
        try:
            async for event in client.events(last, opened=opened):
                last = event.id
                delay = 0.5
                if event.type == EventType.CREATED:
                    queue.put_nowait(event.request.id)
        except Unavailable as exc:
            console.print(f"[yellow]Lost the server ({shown(str(exc))}); reconnecting…[/]")
        except SignoffError as exc:
            console.print(f"[red]{shown(exc.message)}[/]")
            raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def watch(client: Client, console: Console) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    opened = asyncio.Event()
    follower = asyncio.create_task(_follow(client, queue, console, opened))
    try:
        # requests already waiting come first; this first read also fails at once when the
        # server is down or the token is refused
        page = await client.list_requests(status=Status.PENDING.value, limit=200)
        # The stream shows only what happens after it opens: once it is open, read again, so
        # that a request made in between is in one or the other (each is shown once).
        opening = asyncio.ensure_future(opened.wait())
        await asyncio.wait({opening, follower}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        opening.cancel()
        if follower.done():
            follower.result()  # raises what stopped the stream
        if opened.is_set():
            page = await client.list_requests(status=Status.PENDING.value, limit=200)
        for request in reversed(page.items):
            queue.put_nowait(request.id)
        console.print(f"Watching {shown(client.url)} for approval requests (Ctrl-C to stop)…")
        seen: set[str] = set()
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, follower}, return_when=asyncio.FIRST_COMPLETED)
            if follower in done:
                getter.cancel()
                follower.result()  # raises what stopped the stream
                return
            request_id = getter.result()
            if request_id in seen:
                continue
            seen.add(request_id)
            await _decide(client, request_id, console)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, SignoffError):
            await follower


async def _decide(client: Client, request_id: str, console: Console) -> None:
    try:
        request: ApprovalRequest = await client.get(request_id)
    except SignoffError as exc:
        console.print(f"[red]{shown(exc.message)}[/]")
        return
    if request.status is not Status.PENDING:
        return

    async def carry_out(answer: Answer) -> ApprovalRequest:
        return await client.decide(
            request.id,
            answer.decision,
            reason=answer.reason,
            modified_args=answer.modified_args,
            seen_digest=request.args_digest,  # what was shown at the prompt
        )

    await decide_at_prompt(request, console, carry_out)
