"""The arithmetic behind ``/v1/stats``: percentiles, per-approver votes, the period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from signoff.errors import InvalidArguments
from signoff.models import ApprovalRequest, Decision, DecisionKind, Status
from signoff.server.stats import parse_since, percentile, summarize

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def request(
    n: int,
    tool: str,
    status: Status,
    decisions: Sequence[tuple[str, DecisionKind, float]] = (),
    decided_after: float | None = None,
) -> ApprovalRequest:
    created = T0 + timedelta(minutes=n)
    return ApprovalRequest.model_validate(
        {
            "id": f"apr_{n}",
            "status": status,
            "tool": tool,
            "args": {},
            "final_args": {},
            "run": {"agent_id": "a"},
            "requested_by": "bot",
            "policy": {"min_role": "editor", "timeout_s": 600, "quorum": 2},
            "created_at": created,
            "expires_at": created + timedelta(minutes=10),
            "decided_at": None
            if decided_after is None
            else created + timedelta(seconds=decided_after),
            "decisions": [
                Decision(decision=kind, by=by, at=created + timedelta(seconds=after))
                for by, kind, after in decisions
            ],
            "args_digest": "d",
        }
    )


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([10.0, 1.0, 5.0], 0.5) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.1


def test_summary_per_tool_approver_and_day() -> None:
    approve, reject = DecisionKind.APPROVE, DecisionKind.REJECT
    requests = [
        # quorum 2: both votes count for their approvers; the request took 40 s
        request(1, "refund", Status.APPROVED, [("ann", approve, 10), ("bob", approve, 40)], 40),
        request(2, "refund", Status.REJECTED, [("bob", reject, 20)], 20),
        request(3, "refund", Status.EXPIRED, decided_after=600),
        request(4, "post", Status.PENDING, [("ann", approve, 5)]),
        request(5, "post", Status.CANCELLED, decided_after=3),
    ]
    out = summarize(requests, T0, T0 + timedelta(days=1), truncated=False)
    assert out.requests == 5
    assert (out.overall.decisions, out.overall.approved, out.overall.approval_rate) == (2, 1, 0.5)
    assert (out.overall.median_s, out.overall.p90_s) == (30.0, 38.0)
    refund, post = out.tools
    assert (refund.tool, refund.requests, refund.decisions, refund.rejected, refund.expired) == (
        "refund",
        3,
        2,
        1,
        1,
    )
    assert (post.tool, post.requests, post.decisions, post.cancelled) == ("post", 2, 0, 1)
    assert post.approval_rate is None and post.median_s is None
    ann, bob = out.approvers
    assert (ann.approver, ann.decisions, ann.approved, ann.median_s) == ("ann", 2, 2, 7.5)
    assert (bob.approver, bob.decisions, bob.approved, bob.rejected) == ("bob", 2, 1, 1)
    assert bob.approval_rate == 0.5
    assert [(d.day, d.decisions) for d in out.days] == [("2026-03-02", 2)]


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, NOW - timedelta(days=7)),
        ("", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        ("30d", NOW - timedelta(days=30)),
        ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T01:00:00+01:00", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_the_period_starts_where_since_says(text: str | None, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["soon", "-1d", "367d", "2026-03-01", "2026-04-01T00:00:00Z", "2024-01-01T00:00:00Z"]
)
def test_a_period_that_cannot_be_read_is_refused(text: str) -> None:
    with pytest.raises(InvalidArguments):
        parse_since(text, NOW)


def test_an_answer_in_the_tools_place_is_a_decision_not_a_rejection() -> None:
    respond, reject = DecisionKind.RESPOND, DecisionKind.REJECT
    requests = [
        request(1, "refund", Status.RESPONDED, [("ann", respond, 30)], 30),
        request(2, "refund", Status.REJECTED, [("ann", reject, 10)], 10),
    ]
    out = summarize(requests, T0, T0 + timedelta(days=1), truncated=False)
    assert (out.overall.decisions, out.overall.responded, out.overall.approval_rate) == (2, 1, 0.0)
    [refund] = out.tools
    assert (refund.decisions, refund.rejected, refund.responded) == (2, 1, 1)
    [ann] = out.approvers
    assert (ann.decisions, ann.rejected, ann.responded) == (2, 1, 1)
