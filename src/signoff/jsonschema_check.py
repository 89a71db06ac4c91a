"""Validation of JSON arguments against a tool's JSON schema (for approvers' edits)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from signoff.models import JSONObject


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    schema = json.loads(schema_text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(schema: JSONObject, instance: Any) -> list[str]:
    """Human-readable problems of ``instance`` against ``schema`` (empty when it fits)."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except SchemaError as exc:
        return [f"the tool's schema is invalid: {exc.message}"]
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(arguments)"
        errors.append(f"{where}: {error.message}")
    return errors


def check_schema(schema: JSONObject) -> str | None:
    """Why ``schema`` is not a valid JSON schema, or None."""
    try:
        _validator(json.dumps(schema, sort_keys=True))
    except SchemaError as exc:
        return exc.message
    return None
