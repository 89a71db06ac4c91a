"""GET /v1/events: Server-Sent Events with increasing ids, replayed without loss."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from signoff.bus import replay
from signoff.client import Client
from signoff.errors import Unauthorized
from signoff.events import Event
from signoff.server import sse
from tests.helpers.sse import frame, frames
from tests.server.conftest import Live
from tests.server.test_api import REFUND, create


async def collect(
    live: Live, token: str, n: int, last_event_id: int | None = None, timeout: float = 10
) -> list[Event]:
    client = Client(live.url, token)
    got: list[Event] = []

    feed = client.follow(after=last_event_id)

    async def read() -> None:
        async for event in feed:
            got.append(event)
            if len(got) == n:
                return

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        await feed.aclose()
        await client.aclose()
    return got


class Follower:
    """Reads a stream in the background, so the test can act while it listens."""

    def __init__(self, live: Live, token: str, last_event_id: int | None = None) -> None:
        self.client = Client(live.url, token)
        self.events: list[Event] = []
        self._last = last_event_id
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def _read(self) -> None:
        async with self.client.follow(after=self._last) as feed:
            async for event in feed:
                self.events.append(event)

    async def __aenter__(self) -> Follower:
        self._task = asyncio.create_task(self._read())
        await asyncio.sleep(0.3)  # let the subscription start before the test acts
        return self

    async def until(self, n: int, timeout: float = 10) -> list[Event]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"only {len(self.events)} of {n} events: {self.events}")
            await asyncio.sleep(0.01)
        return self.events

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.client.aclose()


async def decide(live: Live, request_id: str, **body: Any) -> None:
    async with live.client(live.approver_token()) as c:
        r = await c.post(
            f"/v1/requests/{request_id}/decisions", json={"decision": "approve", **body}
        )
        assert r.status_code == 200, r.text


async def test_live_events_in_order(live: Live) -> None:
    async with Follower(live, live.approver_token()) as follower:
        req = await create(live)
        await decide(live, req["id"])
        async with live.client(live.agent_token()) as agent:
            await agent.post(f"/v1/requests/{req['id']}/consume")
            await agent.post(f"/v1/requests/{req['id']}/outcome", json={"status": "succeeded"})
        events = await follower.until(4)
    assert [e.type for e in events] == [
        "request.created",
        "request.decided",
        "request.consumed",
        "request.outcome",
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert events[0].request_id == req["id"] and events[0].snapshot.status == "pending"
    assert events[1].snapshot.status == "approved"
    assert events[3].snapshot.outcome is not None


async def test_without_last_event_id_only_new_events(live: Live) -> None:
    await create(live, {**REFUND, "tool_call_id": "old"})
    async with Follower(live, live.approver_token()) as follower:
        new = await create(live, {**REFUND, "tool_call_id": "new"})
        events = await follower.until(1)
        await asyncio.sleep(0.2)
    assert [e.request_id for e in follower.events] == [new["id"]]
    assert events[0].type == "request.created"


async def test_replay_after_a_dropped_connection_loses_nothing(live: Live) -> None:
    token = live.approver_token()
    async with Follower(live, token) as follower:
        first = await create(live, {**REFUND, "tool_call_id": "1"})
        seen = await follower.until(1)
    last = seen[-1].id
    # while nobody listens, things happen
    second = await create(live, {**REFUND, "tool_call_id": "2"})
    await decide(live, first["id"])
    await decide(live, second["id"], modified_args={"amount": 5})
    replayed = await collect(live, token, 3, last_event_id=last)
    assert [(e.type, e.request_id) for e in replayed] == [
        ("request.created", second["id"]),
        ("request.decided", first["id"]),
        ("request.decided", second["id"]),
    ]
    assert [e.id for e in replayed] == list(range(last + 1, last + 4))
    # replay from the very beginning too
    everything = await collect(live, token, 4, last_event_id=0)
    assert [e.id for e in everything] == [1, 2, 3, 4]


async def test_replay_then_live_without_duplicates(live: Live) -> None:
    token = live.approver_token()
    a = await create(live, {**REFUND, "tool_call_id": "a"})
    async with Follower(live, token, last_event_id=0) as follower:
        await follower.until(1)
        await decide(live, a["id"])
        events = await follower.until(2)
        await asyncio.sleep(0.2)
    assert [e.id for e in follower.events] == [1, 2]
    assert [e.type for e in events] == ["request.created", "request.decided"]


async def test_an_agent_sees_only_its_own_events(live: Live) -> None:
    async with Follower(live, live.agent_token("bot-a")) as follower:
        await create(live, {**REFUND, "tool_call_id": "x"}, agent="bot-b")
        mine = await create(live, {**REFUND, "tool_call_id": "y"}, agent="bot-a")
        events = await follower.until(1)
        await asyncio.sleep(0.2)
    assert [e.request_id for e in follower.events] == [mine["id"]]
    assert events[0].snapshot.requested_by == "bot-a"


async def test_bad_last_event_id(live: Live) -> None:
    async with live.client(live.approver_token()) as c:
        for bad in ("abc", "-3"):
            r = await c.get("/v1/events", headers={"Last-Event-ID": bad})
            assert r.status_code == 422


async def test_stream_needs_a_token(live: Live) -> None:
    async with live.client(None) as c:
        assert (await c.get("/v1/events")).status_code == 401


async def test_stream_tickets_are_single_use_and_not_bearer_tokens(live: Live) -> None:
    async with live.client(live.approver_token()) as c:
        r = await c.post("/v1/stream-tickets")
        assert r.status_code == 201
        ticket = r.json()["ticket"]
        assert r.json()["expires_in"] == 60
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as anonymous:
        async with anonymous.stream("GET", "/v1/events", params={"ticket": ticket}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        again = await anonymous.get("/v1/events", params={"ticket": ticket})
        assert again.status_code == 401
        as_bearer = await anonymous.get(
            "/v1/requests", headers={"Authorization": f"Bearer {ticket}"}
        )
        assert as_bearer.status_code == 401
        # a ticket opens the stream only, nothing else
        elsewhere = await anonymous.get("/v1/requests", params={"ticket": ticket})
        assert elsewhere.status_code == 401


async def test_the_stream_ends_when_the_token_expires(live: Live) -> None:
    """The server ends the stream at the token's expiry; reopening it is then refused, which
    ends the client's feed (a refused token is never retried forever)."""
    client = Client(live.url, live.approver_token(ttl="2s"))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(Unauthorized):
            async for _ in client.follow():
                pass
    finally:
        await client.aclose()
    assert asyncio.get_running_loop().time() - started < 10


async def test_a_slow_client_never_holds_up_the_server_and_loses_nothing(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream whose buffer fills up is dropped by the bus (nothing waits for it), and its
    feed resumes from the store after the last event it sent: in order, none lost."""
    monkeypatch.setattr(replay, "STREAM_BUFFER", 3)
    from signoff.models import Principal

    stream: AsyncIterator[Any] = sse.stream(
        live.service, Principal(sub="p", role="admin"), await live.service.store.last_event_id()
    )
    reading = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)  # the stream subscribes
    first = await create(live, {**REFUND, "tool_call_id": "0"})
    got = [frame(await asyncio.wait_for(reading, 5))]
    assert first["id"] in got[0]["data"]
    # the client stops reading while ten more events happen: more than its buffer holds
    created = [await create(live, {**REFUND, "tool_call_id": str(i)}) for i in range(1, 11)]
    assert not any(live.service.bus._listeners)  # dropped: nobody waits for a slow reader
    rest: list[dict[str, str]] = []
    while len(rest) < 10:  # the events waiting go out together, in as few writes as fit
        rest += frames(await asyncio.wait_for(anext(stream), 5))
    first_id = int(got[0]["id"])
    assert [int(e["id"]) for e in rest] == list(range(first_id + 1, first_id + 11))
    assert [c["id"] in e["data"] for c, e in zip(created, rest, strict=True)] == [True] * 10
    await stream.aclose()  # type: ignore[attr-defined]


async def test_the_events_already_waiting_go_out_in_one_write_in_order(live: Live) -> None:
    from signoff.models import Principal

    stream: AsyncIterator[Any] = sse.stream(
        live.service, Principal(sub="p", role="admin"), await live.service.store.last_event_id()
    )
    reading = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.1)  # the stream subscribes
    first = await create(live, {**REFUND, "tool_call_id": "0"})
    assert first["id"] in frame(await asyncio.wait_for(reading, 5))["data"]
    created = [await create(live, {**REFUND, "tool_call_id": str(i)}) for i in range(1, 4)]
    burst = frames(await asyncio.wait_for(anext(stream), 5))
    assert [c["id"] in e["data"] for c, e in zip(created, burst, strict=True)] == [True] * 3
    assert [int(e["id"]) for e in burst] == sorted(int(e["id"]) for e in burst)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_from_now_means_from_when_the_stream_was_answered(live: Live) -> None:
    """A client that sees the stream open and then reads the current state must get every
    event after that moment, even one that happens before the stream's first step runs."""
    from signoff.models import Principal

    answered = await sse.response(live.service, Principal(sub="p", role="admin"), None, None)
    created = await create(live, {**REFUND, "tool_call_id": "between"})
    body: AsyncIterator[Any] = answered.body_iterator  # type: ignore[assignment]
    first = frame(await asyncio.wait_for(anext(body), 5))
    assert created["id"] in first["data"]
    await body.aclose()  # type: ignore[attr-defined]


async def test_client_events_raise_unauthorized(live: Live) -> None:
    client = Client(live.url, "nonsense")
    with pytest.raises(Unauthorized):
        async for _ in client.follow():
            pass
    await client.aclose()


async def test_heartbeats_keep_an_idle_stream_open(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comment line now and then, so that proxies do not close a quiet stream."""
    monkeypatch.setattr(sse, "HEARTBEAT_S", 0.2)
    headers = {"Authorization": f"Bearer {live.approver_token()}"}
    comments = []
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
        client.stream("GET", "/v1/events", headers=headers) as stream,
    ):
        assert stream.status_code == 200
        async with asyncio.timeout(5):
            async for line in stream.aiter_lines():
                if line.startswith(":"):
                    comments.append(line)
                    if len(comments) == 2:
                        break
    assert len(comments) == 2


def test_an_event_spliced_from_the_stored_body_is_the_same_json() -> None:
    """A stream sends the request as the store wrote it (not serialized once more): the
    same document as serializing the request."""
    import json as _json

    from signoff.events import Event, EventType
    from tests.stores.test_contract import make_request

    request = make_request(7).model_copy(update={"reason": 'Rückerstattung \u2028 «x» "q"'})
    plain = Event(9, EventType.CREATED, request.id, "2026-12-01T12:00:00Z", request, 8)
    spliced = Event(
        9,
        EventType.CREATED,
        request.id,
        "2026-12-01T12:00:00Z",
        request,
        8,
        request.model_dump_json(),
    )
    assert _json.loads(spliced.wire()) == _json.loads(plain.wire())
    assert list(_json.loads(spliced.wire())) == ["id", "type", "at", "request"]


async def test_a_frame_is_what_the_general_encoder_writes(live: Live) -> None:
    from sse_starlette import ServerSentEvent

    created = await create(live, {**REFUND, "reason": "two\nlines and \u2028 one more"})
    events = await live.service.store.events_after(0)
    event = next(e for e in events if e.request_id == created["id"])
    general = ServerSentEvent(data=event.wire(), event=event.type, id=str(event.id)).encode()
    assert sse.to_sse(event) == general
    assert frame(general)["data"] == event.wire()


def test_json_with_a_line_break_is_split_into_data_lines() -> None:
    class Broken:
        id, type = 7, "request.created"

        def wire(self) -> str:
            return '{"a":\n1}'

    raw = sse.to_sse(Broken())  # type: ignore[arg-type]
    assert raw == b'id: 7\r\nevent: request.created\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
    assert frame(raw)["data"] == '{"a":\n1}'
