"""How a failed connection is told to a person or a model (signoff._util.failure_text)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from signoff._util import failure_text
from signoff.client import Client
from signoff.errors import Unavailable
from tests.channels.providers import self_signed


async def test_a_refused_connection_says_so_and_nothing_of_the_client() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get("http://127.0.0.1:1/")
    assert "ConnectionKey" in repr(caught.value)  # what used to be printed
    assert failure_text(caught.value) == "Connection refused"


async def test_the_client_names_the_server_and_the_reason() -> None:
    async with Client("http://127.0.0.1:1", "token") as client:
        with pytest.raises(Unavailable) as caught:
            await client.get("apr_x")
    assert caught.value.message == (
        "cannot reach the signoff server at http://127.0.0.1:1: Connection refused"
    )


@pytest.mark.parametrize(
    ("error", "told"),
    [
        (TimeoutError(), "timed out"),
        (aiohttp.ServerTimeoutError("Timeout on reading data from socket"), "timed out"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "Name or service not known",
        ),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "Connection reset by peer"),
        (aiohttp.ServerDisconnectedError(), "Server disconnected"),
        (aiohttp.ClientPayloadError(), "ClientPayloadError"),
        (ValueError("not JSON"), "not JSON"),
    ],
)
def test_each_kind_of_failure_in_words(error: BaseException, told: str) -> None:
    assert failure_text(error) == told


async def test_an_untrusted_certificate_is_said_so_not_as_errno_1(tmp_path: Path) -> None:
    """TLS errors carry errno 1, which os.strerror calls "Operation not permitted"."""
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(f"https://127.0.0.1:{port}", "token") as client:
            with pytest.raises(Unavailable) as caught:
                await client.get("apr_x")
    finally:
        server.close()
    assert "the server's certificate is not trusted (" in caught.value.message
    assert "Operation not permitted" not in caught.value.message
    assert failure_text(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version")) == (
        "TLS failed ([SSL: WRONG_VERSION_NUMBER] wrong version)"
    )
