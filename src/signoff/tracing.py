"""OpenTelemetry spans for gated calls (the ``otel`` extra; docs/observability.md).

Each call through a gate is one span following the GenAI semantic conventions'
``execute_tool`` span — name ``execute_tool {tool}``, ``gen_ai.operation.name``,
``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type``, ``error.type`` — with
what signoff adds: ``signoff.request_id``, ``signoff.status`` (the call's outcome: executed,
rejected, timeout, responded …), ``signoff.decision`` (approve, edit, reject, respond),
``signoff.decided_by`` and ``signoff.wait_ms``. Its children: ``signoff.wait`` (waiting for
the decision) and ``signoff.execute`` (the tool body). Calls that never ran (rejected,
expired, denied by policy, answered by an approver) have their span too.

Nothing is traced unless the OpenTelemetry API is importable *and* the application has set
a tracer provider (``trace.set_tracer_provider``): without one, a call pays one global read
and an ``isinstance`` check, not a no-op span (a no-op span costs microseconds, and most
calls are let straight through). signoff never sets a provider or an exporter itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from signoff._version import __version__
from signoff.models import DecisionKind, Status
from signoff.outcome import CallStatus, Outcome

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace import ProxyTracerProvider, SpanKind, StatusCode

    _AVAILABLE = True
except ImportError:  # the extra is not installed: every function here is a no-op
    _AVAILABLE = False

__all__ = ["call_span", "child", "finish", "note", "tracer"]

#: outcomes that mean something went wrong (span status ERROR), not a decision not to run
_FAULTS = {
    CallStatus.FAILED,
    CallStatus.INVALID,
    CallStatus.UNAVAILABLE,
    CallStatus.ALREADY_CONSUMED,
}
_cached: tuple[object, Tracer] | None = None
_NULL = contextlib.nullcontext()
_UNKNOWN = object()
#: a provider named in the environment is loaded by the API on first use
_FROM_ENV = _AVAILABLE and "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def tracer() -> Tracer | None:
    """signoff's tracer, or None when nothing would record what it traces."""
    global _cached
    if _cached is not None:
        return _cached[1]  # a provider, once set, is never replaced (the API sets it once)
    if not _AVAILABLE or _unset():
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider):
        return None  # no provider set: spans would go nowhere
    _cached = (provider, provider.get_tracer("signoff", __version__))
    return _cached[1]


def _unset() -> bool:
    """Whether no tracer provider is set, read without the API's per-call look into the
    environment (this runs on every gated call). The API's own global, where this pinned
    range of it has one; otherwise the API's answer."""
    if _FROM_ENV:
        return False
    return getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN) is None


@contextlib.contextmanager
def call_span(
    current: Tracer, tool: str, tool_call_id: str | None, description: str | None
) -> Iterator[Span]:
    """The ``execute_tool`` span of one gated call (current while it lasts)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.type": "function",
    }
    if tool_call_id is not None:
        attributes["gen_ai.tool.call.id"] = tool_call_id
    if description:
        attributes["gen_ai.tool.description"] = description
    with current.start_as_current_span(
        f"execute_tool {tool}", kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield span


def child(name: str, current: Tracer | None = None) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one (``signoff.wait``, ``signoff.execute``), or nothing."""
    current = current or tracer()
    if current is None:
        return _NULL
    return current.start_as_current_span(name, kind=SpanKind.INTERNAL)


def note(attributes: Mapping[str, Any]) -> None:
    """Add ``attributes`` to the current span, when one is recording."""
    if not _AVAILABLE:
        return
    span = _trace.get_current_span()
    if span.is_recording():
        span.set_attributes(dict(attributes))


def finish(span: Span, outcome: Outcome) -> None:
    """What became of the call, on its span."""
    attributes: dict[str, Any] = {"signoff.status": outcome.status.value}
    request = outcome.request
    if request is not None:
        attributes["signoff.request_id"] = request.id
        if request.decisions and request.status is not Status.PENDING:
            last = request.decisions[-1]
            kind = last.decision.value
            if last.decision is DecisionKind.APPROVE and request.modified_fields:
                kind = "edit"
            attributes["signoff.decision"] = kind
            deciders = (
                [d.by for d in request.approvals]
                if request.status is Status.APPROVED
                else [last.by]
            )
            attributes["signoff.decided_by"] = ",".join(dict.fromkeys(deciders))
    if outcome.is_error and outcome.status is not CallStatus.PENDING:
        error = outcome.to_model_json()
        code = error.get("error") if isinstance(error, dict) else None
        attributes["error.type"] = code or outcome.status.value
    span.set_attributes(attributes)
    if outcome.status in _FAULTS:
        span.set_status(StatusCode.ERROR, outcome.message)
