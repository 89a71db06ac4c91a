"""The endpoint table's shape, and how one endpoint answers: authenticate, read the body,
call the handler, turn a :class:`SignoffError` into a problem document, count it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from signoff.errors import SignoffError, Unauthorized
from signoff.models import Principal
from signoff.problems import from_error, oauth_error
from signoff.server.parsing import read_form, read_json
from signoff.server.state import AppState


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One endpoint: the routes and the OpenAPI document are both built from these.
    Authorization is not declared here: it lives in the service, whoever calls."""

    method: str
    path: str
    name: str
    summary: str
    handler: Callable[[Ctx], Awaitable[Response]]
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    #: status → response body model (None: the described document is not JSON)
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    content_type: str = "application/json"
    #: answered without a token (health, metrics, this document)
    public: bool = False
    #: the body may be left out (an empty body is no body)
    optional_body: bool = False
    #: a single-use stream ticket in the query authenticates too (browsers' EventSource)
    ticket_auth: bool = False
    #: the response links to what a client can do next with the new request's id
    links: bool = False
    #: the response is a JSON document of its own shape (the OpenAPI document itself)
    json_document: bool = False
    #: the body is a urlencoded form, read into a dict of strings (the OAuth endpoints)
    form: bool = False
    #: errors are OAuth error objects (RFC 6749 §5.2), not problem documents
    oauth: bool = False


@dataclass(slots=True)
class Ctx:
    request: Request
    state: AppState
    principal: Principal | None
    body: Any = None

    @property
    def who(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)


async def authenticate(request: Request, state: AppState, endpoint: Endpoint) -> Principal | None:
    if endpoint.public:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await state.verify(token.strip())
    if endpoint.ticket_auth:
        ticket = request.query_params.get("ticket")
        if ticket:
            return await state.tickets.redeem(ticket)
    session = await state.session_principal(request)
    if session is not None:
        return session
    if header:
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    raise Unauthorized("this endpoint needs 'Authorization: Bearer <token>'")


def handler_for(endpoint: Endpoint, state: AppState) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            principal = await authenticate(request, state, endpoint)
            body = None
            if endpoint.form:
                body = await read_form(request)
            elif endpoint.body is not None:
                if endpoint.optional_body and request.headers.get("content-length") in (
                    None,
                    "0",
                ):
                    body = None
                else:
                    body = await read_json(request, state)
            response = await endpoint.handler(Ctx(request, state, principal, body))
        except SignoffError as exc:
            if endpoint.oauth:
                response = oauth_error(exc)
            else:
                response = from_error(exc, instance=request.url.path)
        status = response.status_code
        state.metrics.observe_http(
            endpoint.name, request.method, status, time.perf_counter() - started
        )
        return response

    return handle
