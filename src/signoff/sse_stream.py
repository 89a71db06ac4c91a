"""Reading ``GET /v1/events``: one open Server-Sent Events stream as a :mod:`signoff.follow`
stream (the HTTP client opens it; this reads and parses it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from pydantic import BaseModel

from signoff._util import failure_text
from signoff.events import Event
from signoff.follow import Interrupted
from signoff.models import ApprovalRequest


class WireEvent(BaseModel):
    """A live event's data as the server sends it (``id`` comes from the SSE ``id`` line)."""

    type: str
    at: str
    request: ApprovalRequest


class SseStream:
    """One open event stream, read in the background into a queue, so that a timeout on
    ``next`` never cuts a read in half."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(), name="signoff-event-stream")

    async def _read(self) -> None:
        try:
            async for event in parse_sse(_lines(self._response.content)):
                self._queue.put_nowait(event)
            self._queue.put_nowait(Interrupted("the server ended the stream"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._queue.put_nowait(Interrupted(f"the event stream broke: {failure_text(exc)}"))

    async def next(self, timeout: float | None) -> Event | None:
        try:
            # not wait_for: on 3.11 it can swallow a cancellation that lands as the item does
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._response.release()


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    async for raw in content:
        yield raw.decode("utf-8").rstrip("\r\n")


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Server-Sent Events lines → live events (comments and id-less events are skipped)."""
    event_id: str | None = None
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data and event_id is not None:
                # one pass of pydantic's own JSON reader, not json.loads and then a model
                wire = WireEvent.model_validate_json("\n".join(data))
                request = wire.request
                yield Event(int(event_id), wire.type, request.id, wire.at, request)
            event_id, data = None, []
        elif line.startswith(":"):
            continue  # a heartbeat
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                event_id = value
            elif name == "data":
                data.append(value)
