"""``signoff watch``: an approver's terminal client against a signoff server.

Each new request is shown as it arrives (tool, arguments, reason, risk, expiry) and decided
at the prompt: approve, reject with a reason, or edit. The server's event stream is followed
in the background while you answer (:meth:`Client.follow`): resumed after a dropped
connection from the last event seen, and at every opening the pending requests are listed
again, so nothing is missed and nothing is shown twice.
"""

from __future__ import annotations

import asyncio
import contextlib

from rich.console import Console

from signoff.channels.console import Answer, decide_at_prompt
from signoff.client import Client
from signoff.errors import SignoffError
from signoff.events import EventType
from signoff.models import ApprovalRequest, Status
from signoff.safe_text import shown


async def watch(client: Client, console: Console) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    openings = 0

    async def listed() -> None:
        # what waits already (a request made while the stream was down, too): listed at
        # every opening of the stream, after it has subscribed
        nonlocal openings
        openings += 1
        if openings > 1:
            console.print("[yellow]Reconnected to the server.[/]")
        for request in reversed(await client.pending()):
            queue.put_nowait(request.id)

    feed = client.follow(types=[EventType.CREATED], on_open=listed)

    async def follow_feed() -> None:
        async for event in feed:
            queue.put_nowait(event.request_id)

    # a first read fails at once when the server is down or the token is refused
    await client.list_requests(status=Status.PENDING.value, limit=1)
    async with feed:
        follower = asyncio.create_task(follow_feed())
        console.print(f"Watching {shown(client.url)} for approval requests (Ctrl-C to stop)…")
        seen: set[str] = set()
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, follower}, return_when=asyncio.FIRST_COMPLETED
                )
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
            response=answer.response,
        )

    await decide_at_prompt(request, console, carry_out)
