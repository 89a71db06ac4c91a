"""The Slack channel's modals: Reject (a required reason) and Edit (one input per editable
argument, with its current value), and reading what an approver submitted.

A modal's ``private_metadata`` carries the request id, the digest of the arguments the
approver was shown when it opened, and the message (channel, ts) it was opened from: a
submission needs nothing from this process's memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from signoff.channels.slack.blocks import clip, mrkdwn, plain
from signoff.decisions import typed_answer
from signoff.errors import InvalidArguments
from signoff.models import ApprovalRequest
from signoff.types import JSONObject

CALLBACK_REJECT = "signoff_reject"
CALLBACK_EDIT = "signoff_edit"
CALLBACK_GRANT = "signoff_grant"
CALLBACK_RESPOND = "signoff_respond"
SCOPE_BLOCK = "grant_scope"
TTL_BLOCK = "grant_ttl"
RESPONSE_BLOCK = "response"
#: how long a grant made in Slack may last (the API takes any time from a minute to a week)
GRANT_TTLS = {"15m": "15 minutes", "1h": "1 hour", "8h": "8 hours", "1d": "1 day", "7d": "7 days"}
GRANT_TTL_DEFAULT = "1h"
REASON_BLOCK = "reason"
REASON_ACTION = "reason"
NOTE_BLOCK = "note"
INPUT_ACTION = "value"
#: Block Kit's limits for modals
MODAL_BLOCKS_MAX = 100
INPUT_MAX = 3000
SELECT_OPTIONS_MAX = 100
OPTION_VALUE_MAX = 150


@dataclass(frozen=True, slots=True)
class Opened:
    """What a modal remembers (its ``private_metadata``)."""

    request_id: str
    digest: str | None
    channel: str | None
    ts: str | None

    def encode(self) -> str:
        return json.dumps(
            {"id": self.request_id, "d": self.digest, "c": self.channel, "t": self.ts}
        )

    @staticmethod
    def decode(text: object) -> Opened | None:
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            return None

        def text_or_none(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return Opened(data["id"], text_or_none("d"), text_or_none("c"), text_or_none("t"))


def _title(text: str) -> JSONObject:
    return {"type": "plain_text", "text": text}


def _summary(request: ApprovalRequest) -> JSONObject:
    text = f"*{mrkdwn(request.tool, 200)}*"
    if request.reason:
        text += "\n" + mrkdwn(request.reason, 1500)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def reject_modal(request: ApprovalRequest, opened: Opened) -> JSONObject:
    return {
        "type": "modal",
        "callback_id": CALLBACK_REJECT,
        "private_metadata": opened.encode(),
        "title": _title("Reject request"),
        "submit": _title("Reject"),
        "close": _title("Cancel"),
        "blocks": [
            _summary(request),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": _title("Why? (the agent is told)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
        ],
    }


def _note_block() -> JSONObject:
    return {
        "type": "input",
        "block_id": NOTE_BLOCK,
        "optional": True,
        "label": _title("Note (optional)"),
        "element": {"type": "plain_text_input", "action_id": INPUT_ACTION, "max_length": 2000},
    }


def _choice(value: str, text: str) -> JSONObject:
    return {"text": _title(text), "value": value}


def grant_modal(request: ApprovalRequest, opened: Opened) -> JSONObject:
    """Approve, and approve the same agent's later calls without asking for a while: the
    identical call, or any call of the tool (CONTRACT.md §9)."""
    tool = plain(request.tool, 40)
    scopes = [
        _choice("identical", "Identical calls (these exact arguments)"),
        _choice("tool", f"Any call of {tool}"),
    ]
    ttls = [_choice(value, text) for value, text in GRANT_TTLS.items()]
    agent = mrkdwn(request.requested_by, 200)
    explain = (
        f"Later calls by *{agent}* are approved at once until the grant ends or someone "
        "revokes it. A changed tool schema voids it."
    )
    return {
        "type": "modal",
        "callback_id": CALLBACK_GRANT,
        "private_metadata": opened.encode(),
        "title": _title("Approve and trust"),
        "submit": _title("Approve"),
        "close": _title("Cancel"),
        "blocks": [
            _summary(request),
            {"type": "section", "text": {"type": "mrkdwn", "text": explain}},
            {
                "type": "input",
                "block_id": SCOPE_BLOCK,
                "label": _title("Also approve, without asking"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": INPUT_ACTION,
                    "options": scopes,
                    "initial_option": scopes[0],
                },
            },
            {
                "type": "input",
                "block_id": TTL_BLOCK,
                "label": _title("For"),
                "element": {
                    "type": "static_select",
                    "action_id": INPUT_ACTION,
                    "options": ttls,
                    "initial_option": _choice(GRANT_TTL_DEFAULT, GRANT_TTLS[GRANT_TTL_DEFAULT]),
                },
            },
            _note_block(),
        ],
    }


def respond_modal(request: ApprovalRequest, opened: Opened) -> JSONObject:
    """Answer in the tool's place: the tool does not run; the model receives the answer."""
    return {
        "type": "modal",
        "callback_id": CALLBACK_RESPOND,
        "private_metadata": opened.encode(),
        "title": _title("Answer instead"),
        "submit": _title("Send answer"),
        "close": _title("Cancel"),
        "blocks": [
            _summary(request),
            {
                "type": "input",
                "block_id": RESPONSE_BLOCK,
                "label": _title("The tool's result, as the agent will receive it"),
                "hint": _title("JSON, or plain text. The tool does not run."),
                "element": {
                    "type": "plain_text_input",
                    "action_id": INPUT_ACTION,
                    "multiline": True,
                    "max_length": INPUT_MAX,
                },
            },
            _note_block(),
        ],
    }


def editable_fields(request: ApprovalRequest) -> list[str]:
    return request.policy.editable[: MODAL_BLOCKS_MAX - 2]


def field_block(index: int) -> str:
    return f"field-{index}"


def _property(request: ApprovalRequest, name: str) -> JSONObject | None:
    schema = request.args_schema or {}
    properties = schema.get("properties")
    prop = properties.get(name) if isinstance(properties, dict) else None
    return prop if isinstance(prop, dict) else None


def field_kind(request: ApprovalRequest, name: str) -> str:
    """How an argument is edited: string, integer, number, boolean, select (an enum) or
    json (anything else, as JSON text)."""
    prop = _property(request, name)
    if prop is not None:
        enum = prop.get("enum")
        if (
            isinstance(enum, list)
            and 0 < len(enum) <= SELECT_OPTIONS_MAX
            and all(len(json.dumps(v)) <= OPTION_VALUE_MAX for v in enum)
        ):
            return "select"
        kind = prop.get("type")
        if kind in ("string", "integer", "number", "boolean"):
            return str(kind)
        if kind is not None:
            return "json"
    current = request.final_args.get(name)
    if isinstance(current, bool):
        return "boolean"
    if isinstance(current, int):
        return "integer"
    if isinstance(current, float):
        return "number"
    if isinstance(current, str):
        return "string"
    return "json"


def _option(value: Any) -> JSONObject:
    return {
        "text": _title(plain(json.dumps(value, ensure_ascii=False))),
        "value": json.dumps(value),
    }


def _element(request: ApprovalRequest, name: str) -> tuple[JSONObject, bool]:
    """The input element for one argument, and whether it may be left empty."""
    kind = field_kind(request, name)
    present = name in request.final_args
    current = request.final_args.get(name)
    element: JSONObject = {"action_id": INPUT_ACTION}
    if kind == "string":
        element |= {"type": "plain_text_input", "max_length": INPUT_MAX}
        if isinstance(current, str):
            element["multiline"] = len(current) > 80 or "\n" in current
            if current:
                element["initial_value"] = clip(current, INPUT_MAX)
        return element, True
    if kind in ("integer", "number"):
        element |= {"type": "number_input", "is_decimal_allowed": kind == "number"}
        if isinstance(current, int | float) and not isinstance(current, bool):
            element["initial_value"] = json.dumps(current)
        return element, False
    if kind in ("boolean", "select"):
        prop = _property(request, name) or {}
        enum = prop.get("enum") if kind == "select" else [True, False]
        values: list[Any] = enum if isinstance(enum, list) else []
        options = [_option(v) for v in values]
        element |= {"type": "static_select", "options": options}
        if present and current in values:
            element["initial_option"] = _option(current)
        return element, False
    element |= {"type": "plain_text_input", "multiline": True, "max_length": INPUT_MAX}
    if present:
        element["initial_value"] = clip(
            json.dumps(current, indent=2, ensure_ascii=False), INPUT_MAX
        )
    return element, False


def edit_modal(request: ApprovalRequest, opened: Opened) -> JSONObject:
    blocks: list[JSONObject] = [_summary(request)]
    for index, name in enumerate(editable_fields(request)):
        element, optional = _element(request, name)
        block: JSONObject = {
            "type": "input",
            "block_id": field_block(index),
            "label": _title(plain(name, 2000)),
            "element": element,
            "optional": optional,
        }
        description = (_property(request, name) or {}).get("description")
        if isinstance(description, str) and description:
            block["hint"] = _title(plain(description, 2000))
        blocks.append(block)
    blocks.append(_note_block())
    return {
        "type": "modal",
        "callback_id": CALLBACK_EDIT,
        "private_metadata": opened.encode(),
        "title": _title("Edit and approve"),
        "submit": _title("Approve"),
        "close": _title("Cancel"),
        "blocks": blocks,
    }


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _read(kind: str, state: Any) -> Any:
    """One submitted value as JSON; raises ValueError with what is wrong."""
    if not isinstance(state, dict):
        raise ValueError("no value was submitted")
    if kind in ("boolean", "select"):
        option = state.get("selected_option")
        if not isinstance(option, dict) or not isinstance(option.get("value"), str):
            raise ValueError("choose a value")
        return json.loads(option["value"], parse_constant=_no_constant)
    text = state.get("value")
    if kind == "string":
        return text if isinstance(text, str) else ""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a value is required")
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        what = "a number" if kind in ("integer", "number") else "valid JSON"
        raise ValueError(f"this is not {what}") from exc
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError("a whole number is required")
    if kind == "number" and (
        not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
    ):
        raise ValueError("a number is required")
    return value


def read_edit(
    request: ApprovalRequest, values: Any
) -> tuple[JSONObject, str | None, dict[str, str]]:
    """From a submitted Edit modal's ``state.values``: the arguments the approver changed,
    their note, and the problems found (block id → message)."""
    changed: JSONObject = {}
    errors: dict[str, str] = {}
    for index, name in enumerate(editable_fields(request)):
        block = field_block(index)
        try:
            value = _read(field_kind(request, name), dig(values, block, INPUT_ACTION))
        except ValueError as exc:
            errors[block] = str(exc)
            continue
        if name not in request.final_args or request.final_args[name] != value:
            changed[name] = value
    return changed, read_note(values), errors


def read_note(values: Any) -> str | None:
    note = dig(values, NOTE_BLOCK, INPUT_ACTION, "value")
    return (note.strip() or None) if isinstance(note, str) else None


def read_grant(values: Any) -> tuple[JSONObject | None, dict[str, str]]:
    """From a submitted grant modal: the grant (``{"ttl", "scope"}``), or the problems."""
    scope = dig(values, SCOPE_BLOCK, INPUT_ACTION, "selected_option", "value")
    ttl = dig(values, TTL_BLOCK, INPUT_ACTION, "selected_option", "value")
    errors: dict[str, str] = {}
    if scope not in ("identical", "tool"):
        errors[SCOPE_BLOCK] = "Choose which calls to approve without asking."
    if ttl not in GRANT_TTLS:
        errors[TTL_BLOCK] = "Choose how long."
    return (None if errors else {"ttl": ttl, "scope": scope}), errors


def read_response(values: Any) -> tuple[Any, dict[str, str]]:
    """From a submitted answer modal: the answer (JSON where the text is JSON, else the
    text itself), or the problems."""
    text = dig(values, RESPONSE_BLOCK, INPUT_ACTION, "value")
    try:
        return typed_answer(text if isinstance(text, str) else ""), {}
    except InvalidArguments as exc:
        return None, {RESPONSE_BLOCK: exc.message.capitalize() + "."}


def read_reason(values: Any) -> str | None:
    reason = dig(values, REASON_BLOCK, REASON_ACTION, "value")
    return reason.strip() or None if isinstance(reason, str) else None


def schema_error_block(request: ApprovalRequest, problem: str) -> str:
    """The input a schema problem (``"amount: … "``) belongs to (the first, by default)."""
    where = problem.split(":", 1)[0]
    for index, name in enumerate(editable_fields(request)):
        if where == name or where.startswith(name + "."):
            return field_block(index)
    return field_block(0)
