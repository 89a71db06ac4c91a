"""The OpenAPI 3.1 document, built from the endpoint table (never written by hand)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from signoff._version import __version__
from signoff.problems import PROBLEM_CONTENT_TYPE, TITLES, Problem
from signoff.server.device_bodies import OAuthErrorOut
from signoff.server.endpoints import Endpoint

_REF = "#/components/schemas/{model}"

#: what a client (or a fuzzer) can do next with the id of a request it created
_LINKS = {
    name: {"operationId": name, "parameters": {"id": "$response.body#/id"}}
    for name in ("get_request", "wait_request", "decide", "cancel", "consume", "outcome")
}


def document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (Problem, "serialization"),
        (OAuthErrorOut, "serialization"),
    ]
    for endpoint in endpoints:
        if endpoint.body is not None:
            pairs.append((endpoint.body, "validation"))
        pairs.extend((m, "serialization") for m in endpoint.responses.values() if m is not None)
    refs, defs = models_json_schema(list(dict.fromkeys(pairs)), ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "signoff",
            "version": __version__,
            "description": "A human sign-off in front of an AI agent's risky tool calls.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


Refs = Mapping[tuple[Any, Literal["validation", "serialization"]], Any]


def _operation(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "responses": _responses(endpoint, refs),
    }
    if parameters := _parameters(endpoint):
        operation["parameters"] = parameters
    if endpoint.body is not None:
        media = "application/x-www-form-urlencoded" if endpoint.form else "application/json"
        operation["requestBody"] = {
            "required": not endpoint.optional_body,
            "content": {media: {"schema": refs[(endpoint.body, "validation")]}},
        }
    if not endpoint.public:
        operation["security"] = [{"bearer": []}]
    return operation


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{id}" in endpoint.path:
        parameters.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The id (apr_… for a request, dev_… for a device).",
            }
        )
    parameters.extend(
        {
            "name": query.name,
            "in": "query",
            "required": False,
            "schema": query.schema,
            "description": query.description,
        }
        for query in endpoint.query
    )
    return parameters


def _responses(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in endpoint.responses.items():
        if status == 204:
            responses["204"] = {"description": "The client went away."}
            continue
        if model is not None:
            content = {"application/json": {"schema": refs[(model, "serialization")]}}
        elif endpoint.json_document:
            content = {"application/json": {"schema": {"type": "object"}}}
        else:
            content = {endpoint.content_type: {"schema": {"type": "string"}}}
        responses[str(status)] = {"description": "OK", "content": content}
        if endpoint.links:
            responses[str(status)]["links"] = _LINKS
    for status in endpoint.errors:
        if endpoint.oauth:
            # RFC 6749 §5.2: the OAuth endpoints answer errors in OAuth's own shape
            content = {"application/json": {"schema": refs[(OAuthErrorOut, "serialization")]}}
        else:
            content = {PROBLEM_CONTENT_TYPE: {"schema": refs[(Problem, "serialization")]}}
        responses[str(status)] = {"description": TITLES.get(status, "Error"), "content": content}
    return responses
