"""A stand-in for the model providers' HTTP APIs, playing scripted model turns.

The real ``anthropic`` and ``openai`` SDKs talk to it over HTTP on 127.0.0.1:

    async with FakeModel(use(ToolUse("issue_refund", {...})), say("Done.")) as model:
        client = AsyncAnthropic(api_key="test", base_url=model.url, max_retries=0)

It speaks ``POST /v1/messages`` (Anthropic), ``POST /v1/responses`` and
``POST /v1/chat/completions`` (OpenAI): each request gets the next scripted turn, rendered in
that API's wire format, and every request body is kept (``model.bodies``) so a test can see
exactly what the model was told. A Messages request with ``"stream": true`` (the Claude Code
CLI sends nothing else) is answered with the API's server-sent events. Like the real APIs, it
refuses (400) a transcript with a tool call that was not answered.

Also here: :class:`Shop`, the gated tools the scripted model calls, shared by the tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from signoff import Gate, GatedTool, Policy, Principal

CREATED = 1_700_000_000
USAGE_ANTHROPIC = {"input_tokens": 12, "output_tokens": 7}
USAGE_RESPONSES = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 19,
}
USAGE_CHAT = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}

# -- the script ------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolUse:
    """One tool call in a scripted turn."""

    name: str
    #: an object, or (OpenAI only) the arguments text exactly as a model wrote it
    args: dict[str, Any] | str = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.args if isinstance(self.args, str) else json.dumps(self.args)


@dataclass(frozen=True)
class Turn:
    """One scripted model turn: some text, then tool calls (several: parallel calls)."""

    text: str = ""
    calls: tuple[ToolUse, ...] = ()


def say(text: str) -> Turn:
    return Turn(text=text)


def use(*calls: ToolUse, text: str = "") -> Turn:
    return Turn(text=text, calls=calls)


def call_id(turn: int, index: int) -> str:
    """The OpenAI id of the ``index``-th call of the ``turn``-th response (both from 1 / 0)."""
    return f"call_{turn}_{index}"


def tool_use_id(turn: int, index: int) -> str:
    """The Anthropic tool_use id of the ``index``-th call of the ``turn``-th response."""
    return f"toolu_{turn}_{index}"


# -- the wire formats --------------------------------------------------------------------


def anthropic_message(n: int, turn: Turn, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if turn.text:
        content.append({"type": "text", "text": turn.text, "citations": None})
    for i, tool in enumerate(turn.calls):
        assert isinstance(tool.args, dict), "the Messages API always sends an object"
        content.append(
            {"type": "tool_use", "id": tool_use_id(n, i), "name": tool.name, "input": tool.args}
        )
    return {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if turn.calls else "end_turn",
        "stop_sequence": None,
        "usage": USAGE_ANTHROPIC,
    }


def anthropic_events(message: dict[str, Any]) -> str:
    """A rendered Messages reply as the streaming API sends it (server-sent events)."""
    head = {**message, "content": [], "stop_reason": None}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": head}]
    for index, block in enumerate(message["content"]):
        start: dict[str, Any]
        delta: dict[str, Any]
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            {"type": "content_block_start", "index": index, "content_block": start},
            {"type": "content_block_delta", "index": index, "delta": delta},
            {"type": "content_block_stop", "index": index},
        ]
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [
        {"type": "message_delta", "delta": stop, "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def openai_response(n: int, turn: Turn, body: dict[str, Any]) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if turn.text:
        text = {"type": "output_text", "text": turn.text, "annotations": []}
        output.append(
            {
                "type": "message",
                "id": f"msg_{n:04d}",
                "status": "completed",
                "role": "assistant",
                "content": [text],
            }
        )
    for i, tool in enumerate(turn.calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{n}_{i}",
                "call_id": call_id(n, i),
                "name": tool.name,
                "arguments": tool.text,
                "status": "completed",
            }
        )
    return {
        "id": f"resp_{n:04d}",
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": USAGE_RESPONSES,
    }


def chat_completion(n: int, turn: Turn, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text or None,
        "refusal": None,
        "annotations": [],
    }
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": call_id(n, i),
                "type": "function",
                "function": {"name": tool.name, "arguments": tool.text},
            }
            for i, tool in enumerate(turn.calls)
        ]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": "tool_calls" if turn.calls else "stop",
    }
    return {
        "id": f"chatcmpl-{n:04d}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"],
        "choices": [choice],
        "usage": USAGE_CHAT,
    }


# -- what the real APIs refuse -----------------------------------------------------------


def anthropic_unanswered(body: dict[str, Any]) -> str | None:
    messages = body["messages"]
    for position, message in enumerate(messages[:-1]):
        content = message["content"]
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        asked = [block["id"] for block in content if block["type"] == "tool_use"]
        following = messages[position + 1]["content"]
        answered = [
            block["tool_use_id"]
            for block in (following if isinstance(following, list) else [])
            if block["type"] == "tool_result"
        ]
        if set(asked) - set(answered):
            return "tool_use ids were found without tool_result blocks immediately after"
    return None


def responses_unanswered(body: dict[str, Any]) -> str | None:
    items = body["input"] if isinstance(body["input"], list) else []
    answered = {item["call_id"] for item in items if item.get("type") == "function_call_output"}
    for item in items:
        if item.get("type") == "function_call" and item["call_id"] not in answered:
            return f"No tool output found for function call {item['call_id']}."
    return None


def chat_unanswered(body: dict[str, Any]) -> str | None:
    messages = body["messages"]
    for position, message in enumerate(messages):
        asked = {call["id"] for call in message.get("tool_calls") or []}
        answered = set()
        for later in messages[position + 1 :]:
            if later["role"] != "tool":
                break
            answered.add(later["tool_call_id"])
        if asked - answered:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'."
            )
    return None


Render = Callable[[int, Turn, dict[str, Any]], dict[str, Any]]
Check = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class Api:
    render: Render
    unanswered: Check


APIS = {
    "/v1/messages": Api(anthropic_message, anthropic_unanswered),
    "/v1/responses": Api(openai_response, responses_unanswered),
    "/v1/chat/completions": Api(chat_completion, chat_unanswered),
}


def api_error(path: str, status: int, message: str) -> JSONResponse:
    if path == "/v1/messages":
        kind = "invalid_request_error" if status == 400 else "api_error"
        return JSONResponse(
            {"type": "error", "error": {"type": kind, "message": message}}, status_code=status
        )
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=status)


# -- the server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]


class FakeModel:
    """A local model API server that plays ``turns`` in order, one per request."""

    def __init__(self, *turns: Turn) -> None:
        self.turns: list[Turn] = list(turns)
        self.requests: list[Received] = []
        #: why a request was refused, for a test to show when it fails
        self.refusals: list[str] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    def play(self, *turns: Turn) -> None:
        """Script more turns."""
        self.turns.extend(turns)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [request.body for request in self.requests]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.json()
        self.requests.append(Received(path, body))
        api = APIS[path]
        problem = api.unanswered(body)
        if problem is not None:
            self.refusals.append(problem)
            return api_error(path, 400, problem)
        if not self.turns:
            self.refusals.append("no scripted turn left")
            return api_error(path, 500, "the fake model has no scripted turn left")
        reply = api.render(len(self.requests), self.turns.pop(0), body)
        if path == "/v1/messages" and body.get("stream"):
            return Response(anthropic_events(reply), media_type="text/event-stream")
        return JSONResponse(reply)

    async def start(self) -> None:
        app = Starlette(routes=[Route(path, self.handle, methods=["POST"]) for path in APIS])
        config = uvicorn.Config(
            app, host="127.0.0.1", log_level="warning", lifespan="off", ws="none", http="h11"
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

    async def __aenter__(self) -> FakeModel:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- the tools the scripted model calls --------------------------------------------------

PUBLISHER = Principal(sub="paul", role="publisher")
REFUND_REJECTED = "Refund was not approved."


class Shop:
    """Gated tools on ``gate``, and a record of every time a tool body really ran.

    ``issue_refund`` asks a publisher (amount editable); ``lookup_order`` never asks.
    """

    def __init__(self, gate: Gate, *, refund_timeout: float = 300) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []

        @gate.tool(
            policy=Policy(
                min_role="publisher",
                reason=lambda call: f"Refund {call.args['amount']} for {call.args['order_id']}",
                reject_message=REFUND_REJECTED,
                timeout=refund_timeout,
                editable=["amount"],
            )
        )
        async def issue_refund(
            order_id: str, amount: Annotated[float, Field(gt=0)]
        ) -> dict[str, Any]:
            """Refund an order."""
            self.ran.append(("issue_refund", {"order_id": order_id, "amount": amount}))
            return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

        @gate.tool(policy=Policy(when=False))
        def lookup_order(order_id: str) -> dict[str, Any]:
            """Look up an order."""
            self.ran.append(("lookup_order", {"order_id": order_id}))
            return {"order_id": order_id, "status": "delivered", "total": 250.0}

        self.issue_refund = issue_refund
        self.lookup_order = lookup_order
        self.tools: list[GatedTool[..., Any]] = [issue_refund, lookup_order]


async def wait_for_pending(gate: Gate, count: int) -> None:
    """Until ``count`` approval requests wait at the same time."""
    async with asyncio.timeout(10):
        while len(await gate.pending()) < count:
            await asyncio.sleep(0.01)
