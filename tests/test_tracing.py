"""OpenTelemetry: each gated call is an ``execute_tool`` span (GenAI semantic conventions)
with its approval, exported here to the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff import tracing as signoff_tracing
from signoff.testing import Approve, Reject, Respond, ScriptedApprover

PUBLISHER = Principal(sub="paul", role="publisher")
RUN = Run(agent_id="support", run_id="r1")


_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A real SDK provider with an in-memory exporter, set as the global one, as an
    application would. The API lets a process set it once: the first test sets it, the
    others find it and start from an empty exporter."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")

    @g.tool(policy=Policy(when="args.amount > 100", min_role="publisher", editable=["amount"]))
    async def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        if amount < 0:
            raise ValueError("negative")
        return "refunded"

    yield g
    await g.aclose()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_an_approved_call_is_an_execute_tool_span_with_wait_and_execute(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    async with ScriptedApprover(gate, lambda r: Approve(), by=PUBLISHER):
        outcome = await gate.call(
            "issue_refund", {"order_id": "A", "amount": 250}, tool_call_id="toolu_1", run=RUN
        )
    assert outcome.status is CallStatus.EXECUTED and outcome.request is not None
    found = by_name(spans)
    call = found["execute_tool issue_refund"]
    assert attrs(call) | {"signoff.wait_ms": 0} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "issue_refund",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": "toolu_1",
        "gen_ai.tool.description": "Refund an order.",
        "signoff.request_id": outcome.request.id,
        "signoff.status": "executed",
        "signoff.decision": "approve",
        "signoff.decided_by": "paul",
        "signoff.wait_ms": 0,
    }
    assert attrs(call)["signoff.wait_ms"] >= 0
    assert call.kind is trace.SpanKind.INTERNAL
    assert call.context is not None
    for child in ("signoff.wait", "signoff.execute"):
        parent = found[child].parent
        assert parent is not None and parent.span_id == call.context.span_id
    assert call.status.status_code is StatusCode.UNSET


async def test_calls_that_never_ran_have_their_span_and_outcome(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    async with ScriptedApprover(gate, lambda r: Reject("too much"), by=PUBLISHER):
        rejected = await gate.call("issue_refund", {"order_id": "A", "amount": 300}, run=RUN)
    async with ScriptedApprover(gate, lambda r: Respond({"done": True}), by=PUBLISHER):
        responded = await gate.call("issue_refund", {"order_id": "B", "amount": 400}, run=RUN)
    finished = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    assert [attrs(s)["signoff.status"] for s in finished] == ["rejected", "responded"]
    first, second = (attrs(s) for s in finished)
    assert rejected.request is not None and responded.request is not None
    assert first["signoff.request_id"] == rejected.request.id
    assert (first["signoff.decision"], first["error.type"]) == ("reject", "approval_rejected")
    assert second["signoff.decision"] == "respond" and "error.type" not in second
    assert [s.name for s in spans.get_finished_spans()].count("signoff.execute") == 0


async def test_a_call_let_through_and_a_failing_tool(
    gate: Gate, spans: InMemorySpanExporter
) -> None:
    await gate.call("issue_refund", {"order_id": "A", "amount": 5}, run=RUN)
    failed = await gate.call("issue_refund", {"order_id": "A", "amount": -1}, run=RUN)
    assert failed.status is CallStatus.FAILED
    calls = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool")]
    through, broken = calls
    assert attrs(through)["signoff.status"] == "executed"
    assert "signoff.request_id" not in attrs(through)  # no human was asked
    assert attrs(broken)["error.type"] == "tool_failed"
    assert broken.status.status_code is StatusCode.ERROR


async def test_a_timed_out_call(spans: InMemorySpanExporter) -> None:
    gate = Gate("memory://")

    @gate.tool(policy=Policy(timeout=0.05))
    async def wire(amount: float) -> str:
        return "sent"

    outcome = await gate.call("wire", {"amount": 1}, run=RUN)
    await gate.aclose()
    assert outcome.status is CallStatus.TIMEOUT and outcome.request is not None
    (span,) = [s for s in spans.get_finished_spans() if s.name == "execute_tool wire"]
    assert attrs(span)["signoff.status"] == "timeout"
    assert attrs(span)["error.type"] == "approval_timeout"
    assert attrs(span)["signoff.request_id"] == outcome.request.id
    assert attrs(span)["signoff.wait_ms"] >= 40


def test_without_a_provider_nothing_is_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signoff_tracing, "_AVAILABLE", False)
    monkeypatch.setattr(signoff_tracing, "_cached", None)
    assert signoff_tracing.tracer() is None
    with signoff_tracing.child("signoff.wait"):
        signoff_tracing.note({"a": 1})


def test_a_process_that_set_no_provider_traces_nothing() -> None:
    """The OpenTelemetry API alone (other packages bring it) records nothing, and signoff
    does not make no-op spans for it."""
    code = (
        "from signoff import tracing\n"
        "from opentelemetry import trace\n"
        "assert tracing.tracer() is None, trace.get_tracer_provider()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
