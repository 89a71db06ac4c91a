"""Policy replay: a candidate policy file evaluated against the stored history, on every store,
with the counts a hand check gives."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signoff.config import parse_config
from signoff.models import DecisionKind, PolicySpec, RequestSpec, Run
from signoff.replay import cutoff, replay, store_history
from signoff.service import ApprovalService
from signoff.shadow import ShadowRecord
from signoff.stores.base import Store
from tests.conftest import AGENT, PUBLISHER, ManualClock

CANDIDATE = {
    "tools": [
        {
            "name": "issue_refund",
            "when": "args.amount > 100",
            "deny": "args.amount > 1000",
            "min_role": "publisher",
        },
        {"name": "delete_user", "when": True, "min_role": "admin"},
    ]
}


async def ask(service: ApprovalService, tool: str, args: dict[str, Any], role: str) -> str:
    spec = RequestSpec(
        tool=tool, args=args, run=Run(agent_id=AGENT.sub), policy=PolicySpec(min_role=role)
    )
    return (await service.submit(spec, AGENT)).request.id


async def record_history(service: ApprovalService, store: Store) -> dict[str, str]:
    """Six asked calls and one shadow-mode call, each with a known fate."""
    ids = {
        "r50": await ask(service, "issue_refund", {"order_id": "A", "amount": 50}, "publisher"),
        "r80": await ask(service, "issue_refund", {"order_id": "B", "amount": 80}, "publisher"),
        "r150": await ask(service, "issue_refund", {"order_id": "C", "amount": 150}, "publisher"),
        "r2000": await ask(service, "issue_refund", {"order_id": "D", "amount": 2000}, "publisher"),
        "del": await ask(service, "delete_user", {"user": "u1"}, "editor"),
        "mail": await ask(service, "send_email", {"to": "x@example.com"}, "editor"),
    }
    for key in ("r50", "r150", "r2000", "del"):
        await service.decide(ids[key], PUBLISHER, DecisionKind.APPROVE)
    await service.decide(ids["r80"], PUBLISHER, DecisionKind.REJECT, reason="no")
    shadow = ShadowRecord(
        tool="issue_refund",
        verdict="run",
        args={"order_id": "E", "amount": 500},
        run=Run(agent_id=AGENT.sub),
        at=service.now(),
    )
    await store.append_audit(shadow.entry())
    return ids


async def test_replay_gives_the_counts_a_hand_check_gives(
    service: ApprovalService, store: Store
) -> None:
    ids = await record_history(service, store)
    config = parse_config(CANDIDATE, source="candidate.toml")
    report = await replay(config, store_history(store, None))

    assert report.total == 7
    assert dict(report.counts["issue_refund"]) == {"run": 2, "ask": 2, "deny": 1}
    assert dict(report.counts["delete_user"]) == {"ask": 1}
    assert dict(report.counts["send_email"]) == {"code": 1}
    assert dict(report.happened["issue_refund"]) == {"approved": 3, "rejected": 1, "ran": 1}
    assert dict(report.changed) == {"run_rejected": 1, "run": 1, "deny": 1, "ask": 1, "stricter": 1}
    by_change = {c.change: c for c in report.changes}
    # the loud one: the candidate would have run what a human refused
    assert by_change["run_rejected"].id == ids["r80"]
    assert by_change["run"].id == ids["r50"]
    assert by_change["deny"].id == ids["r2000"]
    assert by_change["ask"].source == "shadow" and by_change["ask"].happened == "ran"
    stricter = by_change["stricter"]
    assert (stricter.id, stricter.min_role, stricter.then_min_role) == (
        ids["del"],
        "admin",
        "editor",
    )

    document = report.to_json()
    assert json.loads(json.dumps(document)) == document
    assert document["changes"][0]["change"] == "run_rejected"
    assert document["tools"]["issue_refund"]["verdicts"] == {"run": 2, "ask": 2, "deny": 1}


async def test_replay_since_leaves_older_calls_out(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    await ask(service, "issue_refund", {"order_id": "old", "amount": 50}, "publisher")
    clock.advance(3 * 86400)
    await ask(service, "issue_refund", {"order_id": "new", "amount": 50}, "publisher")
    since = cutoff("2d", service.now())
    config = parse_config(CANDIDATE)
    report = await replay(config, store_history(store, since), since=since)
    assert report.total == 1
    everything = await replay(config, store_history(store, None))
    assert everything.total == 2


async def test_a_condition_that_fails_replays_as_ask_with_its_reason(
    service: ApprovalService, store: Store
) -> None:
    await ask(service, "issue_refund", {"order_id": "A", "amount": 50}, "publisher")
    config = parse_config({"tools": [{"name": "issue_refund", "when": "args.nothing > 1"}]})
    report = await replay(config, store_history(store, None))
    (only,) = (c for t in report.counts.values() for c in t.elements())
    assert only == "ask"


RUNNING_TOTAL = {
    "tools": [
        {
            "name": "issue_refund",
            "when": "run_sum('issue_refund', 'amount', '24h') + double(args.amount) > 500.0",
        }
    ]
}


async def refund(
    service: ApprovalService, clock: ManualClock, run_id: str, amount: int, then: str | None
) -> str:
    """A refund asked for in ``run_id`` a minute after the last; ``then`` it was approved or
    rejected a second later (None: left pending)."""
    clock.advance(60)
    spec = RequestSpec(
        tool="issue_refund",
        args={"amount": amount},
        run=Run(agent_id=AGENT.sub, run_id=run_id),
        policy=PolicySpec(min_role="publisher"),
    )
    request_id = (await service.submit(spec, AGENT)).request.id
    clock.advance(1)
    if then == "approve":
        await service.decide(request_id, PUBLISHER, DecisionKind.APPROVE)
    elif then == "reject":
        await service.decide(request_id, PUBLISHER, DecisionKind.REJECT, reason="no")
    return request_id


async def test_a_running_total_limit_replays_on_the_history_as_it_was(
    service: ApprovalService, store: Store, clock: ManualClock
) -> None:
    from signoff.replay import replay_one, replay_store
    from signoff.stores.history_store import Execution

    a = await refund(service, clock, "r1", 200, "approve")  # 0 + 200: run
    b = await refund(service, clock, "r1", 300, "reject")  # 200 + 300 = 500, not over: run
    c = await refund(service, clock, "r1", 200, "approve")  # the rejected 300 never ran: run
    clock.advance(60)  # 50 more ran unasked under a limit: on the ledger
    ran = Execution("ex_1", "issue_refund", AGENT.sub, "r1", {"amount": 50}, service.now())
    await store.record_execution(ran)
    d = await refund(service, clock, "r1", 100, None)  # 200 + 200 + 50 + 100 = 550: ask
    e = await refund(service, clock, "r2", 100, "approve")  # another run starts at 0: run
    f = await refund(service, clock, "r3", 400, None)  # run
    g = await refund(service, clock, "r3", 200, "approve")  # f is in flight: 600, ask
    clock.advance(60)
    await service.decide(f, PUBLISHER, DecisionKind.REJECT, reason="later")  # after g

    config = parse_config(RUNNING_TOTAL)
    report = await replay_store(store, config, None)
    assert dict(report.counts["issue_refund"]) == {"run": 5, "ask": 2}
    verdicts = {c.id: c.verdict for c in report.changes}
    assert verdicts == {a: "run", b: "run", c: "run", e: "run", f: "run"}  # d and g: no change
    assert {c.id: c.change for c in report.changes}[b] == "run_rejected"

    # a period that starts after the first calls still sees them in its limits' window
    since = service.now() - timedelta(seconds=200)
    recent = await replay_store(store, config, since)
    assert recent.total == 3 and dict(recent.counts["issue_refund"]) == {"run": 2, "ask": 1}

    # without the ledger (a server's API does not give it) such a limit cannot be judged:
    # every call asks, with the reason
    blind = await replay(config, store_history(store, None))
    assert dict(blind.counts["issue_refund"]) == {"ask": 7}
    alone = await replay_one(config, await service.get(a, PUBLISHER))
    assert alone.verdict == "ask" and "history of calls could not be read" in str(alone.note)
    assert {d, g}.isdisjoint(verdicts)


def test_cutoff_takes_durations_and_clamps_what_no_date_can_hold() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert cutoff("7d", now) == now - timedelta(days=7)
    assert cutoff(None, now) is None
    assert cutoff("99999999999d", now) is None


def test_the_cli_replays_a_sqlite_history(tmp_path: Path) -> None:
    import asyncio

    from signoff.stores.sqlite import SqliteStore

    db = tmp_path / "h.db"

    async def build() -> None:
        store = SqliteStore(db)
        service = ApprovalService(store, sweep=False)
        await service.start()
        try:
            await record_history(service, store)
        finally:
            await service.aclose()

    asyncio.run(build())
    candidate = tmp_path / "new.toml"
    candidate.write_text(
        '[[tools]]\nname = "issue_refund"\nwhen = "args.amount > 100"\n'
        'deny = "args.amount > 1000"\nmin_role = "publisher"\n'
        '[[tools]]\nname = "delete_user"\nmin_role = "admin"\n'
    )
    url = f"sqlite:///{db}"
    base = [sys.executable, "-m", "signoff", "policy", "replay", "--config", str(candidate)]
    out = subprocess.run(
        [*base, "--db", url, "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    document = json.loads(out.stdout)
    assert document["total"] == 7
    assert document["changed"]["run_rejected"] == 1
    table = subprocess.run(
        [*base, "--db", url, "--since", "7d"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert "7 past calls replayed" in table.stdout
    assert "!! 1 would now run unasked, but a human rejected it" in table.stdout
