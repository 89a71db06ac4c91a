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
from rich.markup import escape

from signoff.channels.console import Answer, decide_at_prompt
from signoff.client import Client
from signoff.errors import SignoffError, Unavailable
from signoff.events import EventType
from signoff.models import ApprovalRequest, Status


async def _follow(client: Client, queue: asyncio.Queue[str], console: Console) -> None:
    """Put the id of every new request on ``queue``, across reconnects."""
    last: int | None = None
    delay = 0.5
    while True:
        try:
            async for event in client.events(last):
                last = event.id
                delay = 0.5
                if event.type == EventType.CREATED:
                    queue.put_nowait(event.request.id)
        except Unavailable as exc:
            console.print(f"[yellow]Lost the server ({escape(str(exc))}); reconnecting…[/]")
        except SignoffError as exc:
            console.print(f"[red]{escape(exc.message)}[/]")
            raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


async def watch(client: Client, console: Console) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    follower = asyncio.create_task(_follow(client, queue, console))
    try:
        # requests already waiting come first (the stream only shows new ones)
        page = await client.list_requests(status=Status.PENDING.value, limit=200)
        for request in reversed(page.items):
            queue.put_nowait(request.id)
        console.print(f"Watching {client.url} for approval requests (Ctrl-C to stop)…")
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
        console.print(f"[red]{escape(exc.message)}[/]")
        return
    if request.status is not Status.PENDING:
        return

    async def carry_out(answer: Answer) -> ApprovalRequest:
        return await client.decide(
            request.id, answer.decision, reason=answer.reason, modified_args=answer.modified_args
        )

    await decide_at_prompt(request, console, carry_out)
