"""The HTTP server's connection limits, and the one way signoff configures uvicorn.

uvicorn closes an idle keep-alive connection after a response, but a connection that never
sends a byte, or sends its request head one byte at a time, is kept open forever; and its
default parser (httptools) takes request heads of any size (a 64 MB header was answered
200). :class:`GuardedProtocol` adds both bounds to uvicorn's own protocol:

- the request head (request line and headers) must arrive within ``HEAD_TIMEOUT_S`` of the
  connection opening, or of the previous response ending; otherwise the connection closes;
- it may be at most ``MAX_HEAD_BYTES``; a larger one gets ``431`` and the connection closes.

Bodies are bounded by the handlers (size, and the time to read them).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: how long a client has to send a request's head
HEAD_TIMEOUT_S = 10.0
#: the largest request head accepted (request line and every header together)
MAX_HEAD_BYTES = 64 * 1024
#: how long a refused connection is read (and dropped) before it is closed
LINGER_S = 2.0
#: how long an idle keep-alive connection stays open after a response
KEEP_ALIVE_S = 15


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size limit on request heads."""

    head_timeout_s = HEAD_TIMEOUT_S
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._in_head = True
        self._discarding = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return  # the answer is sent; what the client still sends is read and dropped
        in_head = self._in_head
        super().data_received(data)
        # counted while the head is still incomplete after a chunk: the chunk that ends it
        # (which may carry body bytes too) is at most one read, so the bound holds
        if in_head and self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    # -- the head's deadline and size ---------------------------------------------------------

    def _await_head(self) -> None:
        self._stop_head_deadline()
        self._in_head, self._head_bytes = True, 0
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        """Answer 431, then close gently: stop writing, read and drop what the client is
        still sending for a moment, then close. Closing at once with unread data would
        reset the connection, and the client might never read the answer."""
        self._stop_head_deadline()
        message = b"the request's head is larger than the server accepts"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def server_config(app: Any, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's config for signoff's app: the guarded protocol and the keep-alive bound."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=options.pop("log_level", "warning"),
        lifespan=options.pop("lifespan", "on"),
        **options,
    )
