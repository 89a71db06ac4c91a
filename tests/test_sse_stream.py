"""The client's reading of a live event stream: one pass of pydantic's JSON reader gives the
request exactly as the server sent it (numbers past 64 bits included)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from signoff.events import Event, EventType
from signoff.sse_stream import parse_sse
from tests.stores.test_contract import make_request


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.split("\r\n"):
        yield line


async def test_an_event_is_read_as_the_server_wrote_it() -> None:
    request = make_request(1).model_copy(
        update={"args": {"big": 123456789012345678901234567890, "note": "é \u2028 ok"}}
    )
    event = Event(42, EventType.CREATED, request.id, "2026-12-01T15:00:00.000000Z", request)
    # a heartbeat, then the event
    text = f": ping\r\n\r\nid: 42\r\nevent: x\r\ndata: {event.wire()}\r\n\r\n"
    got = [e async for e in parse_sse(_lines(text))]
    assert len(got) == 1
    assert got[0].id == 42 and got[0].type == "request.created" and got[0].at == event.at
    assert got[0].snapshot.args == {"big": 123456789012345678901234567890, "note": "é \u2028 ok"}
    assert got[0].snapshot == request
