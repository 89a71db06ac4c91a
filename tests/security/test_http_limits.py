"""Connections are bounded: a client that never sends its request head, or sends it slowly,
is cut off; a request head larger than the limit gets 431; a normal client is unaffected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signoff.server.http import GuardedProtocol
from tests.server.conftest import Live, start_live, stop_live


@pytest.fixture
async def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    monkeypatch.setattr(GuardedProtocol, "head_timeout_s", 0.5)
    info, server, task = await start_live(tmp_path)
    yield info
    await stop_live(server, task)


async def connect(live: Live) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = live.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    return await asyncio.wait_for(reader.read(), seconds)


async def test_a_connection_that_never_speaks_is_closed(live: Live) -> None:
    reader, writer = await connect(live)
    started = time.monotonic()
    assert await closed_within(reader, 5) == b""
    assert time.monotonic() - started < 5
    writer.close()


async def test_a_head_sent_byte_by_byte_is_cut_off(live: Live) -> None:
    reader, writer = await connect(live)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        assert await closed_within(reader, 5) == b""
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


async def test_a_huge_head_is_431(live: Live) -> None:
    reader, writer = await connect(live)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    for _ in range(64):  # 4 MB of one header, in chunks
        writer.write(b"a" * 65536)
        try:
            await writer.drain()
        except ConnectionError:
            break
    answer = await closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 431 ")
    writer.close()


async def test_an_ordinary_client_keeps_its_connection(live: Live) -> None:
    reader, writer = await connect(live)
    for _ in range(3):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"b" * 8000 + b"\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        assert status.startswith(b"HTTP/1.1 200")
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(0.3)  # idle between requests, under the head deadline
    writer.close()


async def test_a_body_that_never_arrives_is_408(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    from signoff.server import parsing as api

    monkeypatch.setattr(api, "BODY_TIMEOUT_S", 0.5)
    reader, writer = await connect(live)
    token = live.agent_token()
    writer.write(
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 408")
    writer.close()
