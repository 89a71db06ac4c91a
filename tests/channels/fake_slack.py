"""A stand-in for Slack's Web API, for the real slack-sdk ``AsyncWebClient`` (``base_url``).

It speaks ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and ``views.open``
in Slack's wire format (JSON bodies, ``Authorization: Bearer xoxb-…``, ``{"ok": false,
"error": …}`` answers, HTTP 429 with ``Retry-After`` for ``ratelimited``), keeps the
messages it was sent, and refuses what Slack refuses: a bad token, an unknown channel, a
message it does not have, and blocks over Block Kit's limits (``invalid_blocks``).
Every call is recorded (``slack.calls``) for the tests to read.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

TOKEN = "xoxb-test-token"
CHANNELS = {"#agent-approvals": "C0APPROVALS", "#oncall": "C0ONCALL"}


class LocalServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        if self._socket is not None:
            self._socket.close()


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    #: the error answered, or None when the call succeeded
    error: str | None = None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    updates: int = 0


@dataclass
class Failure:
    error: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlack(LocalServer):
    def __init__(self) -> None:
        super().__init__(Starlette(routes=[Route("/api/{method}", self.handle, methods=["POST"])]))
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self._failures: dict[str, list[Failure]] = {}
        self._seq = 0

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def fail_next(self, method: str, error: str, *, status: int = 200, **headers: str) -> None:
        """Answer the next call of ``method`` with ``error``."""
        self._failures.setdefault(method, []).append(Failure(error, status, headers))

    def called(self, method: str) -> list[dict[str, Any]]:
        """The bodies of the successful calls of ``method``, in order."""
        return [c.body for c in self.calls if c.method == method and c.error is None]

    def ephemeral_to(self, user: str) -> list[str]:
        return [b["text"] for b in self.called("chat.postEphemeral") if b["user"] == user]

    def message(self, receipt: dict[str, Any]) -> Message:
        return self.messages[(receipt["channel"], receipt["ts"])]

    async def handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await request.json()
        call = Call(method, body)
        self.calls.append(call)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return self._error(call, Failure("invalid_auth"))
        failures = self._failures.get(method)
        if failures:
            return self._error(call, failures.pop(0))
        handler = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "chat.postEphemeral": self._ephemeral,
            "views.open": self._views_open,
        }.get(method)
        if handler is None:
            return self._error(call, Failure("unknown_method"))
        answer = handler(body)
        if "error" in answer:
            return self._error(call, Failure(answer["error"]))
        return JSONResponse({"ok": True, **answer})

    def _error(self, call: Call, failure: Failure) -> Response:
        call.error = failure.error
        return JSONResponse(
            {"ok": False, "error": failure.error},
            status_code=failure.status,
            headers=failure.headers,
        )

    def _channel(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        if name in CHANNELS.values():
            return name
        return CHANNELS.get(name)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return {"error": "channel_not_found"}
        if (problem := message_problem(body)) is not None:
            return {"error": problem}
        self._seq += 1
        ts = f"{1_700_000_000 + self._seq}.{self._seq:06d}"
        thread = body.get("thread_ts")
        self.messages[(channel, ts)] = Message(
            channel, ts, body["text"], body.get("blocks") or [], thread
        )
        return {"channel": channel, "ts": ts, "message": {"text": body["text"], "ts": ts}}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((body.get("channel"), body.get("ts")))  # type: ignore[arg-type]
        if message is None:
            return {"error": "message_not_found"}
        if (problem := message_problem(body)) is not None:
            return {"error": problem}
        message.text, message.blocks = body["text"], body.get("blocks") or []
        message.updates += 1
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._channel(body.get("channel")) is None:
            return {"error": "channel_not_found"}
        if not body.get("user") or not body.get("text"):
            return {"error": "invalid_arguments"}
        self._seq += 1
        return {"message_ts": f"{1_700_000_000 + self._seq}.{self._seq:06d}"}

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if not body.get("trigger_id") or not isinstance(view, dict):
            return {"error": "invalid_arguments"}
        if (problem := view_problem(view)) is not None:
            return {"error": problem}
        self._seq += 1
        return {"view": {"id": f"V{self._seq:08d}", **view}}


# -- Block Kit's limits, as Slack enforces them -------------------------------------------


def _text(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _block_problem(block: dict[str, Any]) -> str | None:
    kind = block.get("type")
    if len(str(block.get("block_id", ""))) > 255:
        return "block_id"
    if kind == "header" and len(_text(block.get("text"))) > 150:
        return "header"
    if kind == "section":
        if len(_text(block.get("text"))) > 3000:
            return "section text"
        fields = block.get("fields") or []
        if len(fields) > 10 or any(len(_text(f)) > 2000 for f in fields):
            return "section fields"
    if kind == "actions":
        elements = block.get("elements") or []
        ids = [e.get("action_id") for e in elements]
        if len(elements) > 25 or len(set(ids)) != len(ids):
            return "actions"
        for element in elements:
            if len(_text(element.get("text"))) > 75 or len(str(element.get("value", ""))) > 2000:
                return "button"
    if kind == "input" and len(_text(block.get("label"))) > 2000:
        return "input label"
    return None


def message_problem(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("text"), str) or not body["text"]:
        return "no_text"
    blocks = body.get("blocks") or []
    if len(blocks) > 50:
        return "invalid_blocks"
    return "invalid_blocks" if any(_block_problem(b) for b in blocks) else None


def view_problem(view: dict[str, Any]) -> str | None:
    if any(len(_text(view.get(k))) > 24 for k in ("title", "submit", "close")):
        return "invalid_arguments"
    if len(str(view.get("private_metadata", ""))) > 3000:
        return "invalid_arguments"
    blocks = view.get("blocks") or []
    if len(blocks) > 100 or any(_block_problem(b) for b in blocks):
        return "invalid_arguments"
    return None
