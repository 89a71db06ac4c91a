"""Invariant 2: one terminal transition per request, whatever races for it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from signoff.connect import connect
from signoff.errors import Conflict
from signoff.models import Principal, Status
from signoff.service import ApprovalService
from tests.conftest import ADMIN, AGENT, refund_spec

ROOT = Path(__file__).resolve().parent.parent


async def test_200_concurrent_conflicting_decisions(service: ApprovalService) -> None:
    req = (await service.submit(refund_spec(), AGENT)).request

    async def decide(n: int) -> bool:
        who = Principal(sub=f"approver-{n}", role="admin")
        decision = "approve" if n % 2 else "reject"
        try:
            await service.decide(req.id, who, decision, reason=f"#{n}")
        except Conflict:
            return False
        return True

    results = await asyncio.gather(*(decide(n) for n in range(200)))
    assert sum(results) == 1
    final = await service.get(req.id, ADMIN)
    assert final.status in (Status.APPROVED, Status.REJECTED)
    assert len(final.decisions) == 1
    types = [e.type for e in await service.audit_events(ADMIN)]
    assert types.count("request.approved") + types.count("request.rejected") == 1
    assert types.count("decision.refused") == 199
    # the one live event for the decision, none for the refusals
    events = await service.store.events_after(0)
    assert [e.type for e in events] == ["request.created", "request.decided"]


@pytest.mark.slow
async def test_processes_racing_on_one_sqlite_file(tmp_path: Path) -> None:
    await processes_race(f"sqlite:///{tmp_path / 'race.db'}")


@pytest.mark.slow
async def test_replicas_racing_on_one_postgres_database(postgres_url: str) -> None:
    await processes_race(postgres_url)


async def processes_race(url: str) -> None:
    """Four processes decide the same 40 requests at once: each gets exactly one decision,
    and the audit chain they all appended to is one unbroken chain."""
    backends = connect(url)
    async with ApprovalService(backends.store, backends.bus, sweep=False) as service:
        ids = [(await service.submit(refund_spec(), AGENT)).request.id for _ in range(40)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.race_worker", url, str(n), *ids],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    winners: dict[str, int] = {}
    for output in outputs:
        for request_id in output["won"]:
            winners[request_id] = winners.get(request_id, 0) + 1
        assert len(output["won"]) + len(output["lost"]) == len(ids)
    assert winners == dict.fromkeys(ids, 1)
    backends = connect(url)
    async with ApprovalService(backends.store, backends.bus, sweep=False) as service:
        for request_id in ids:
            request = await service.get(request_id, ADMIN)
            assert request.status in (Status.APPROVED, Status.REJECTED)
            assert len(request.decisions) == 1
        verification = await service.verify_audit(ADMIN)
        # one creation per request, and one decision or refusal per worker per request
        assert verification.ok and verification.events == len(ids) * (1 + len(workers))


@pytest.mark.slow
async def test_100_racing_decisions_across_3_replicas_make_one_transition(
    postgres_url: str,
) -> None:
    """Three replicas, each with its own pool, cache and bus on one PostgreSQL database,
    take 100 decisions on one request at once: one terminal transition, 99 refusals, each
    audited, and the log they all appended to seals and verifies."""
    replicas = []
    for _ in range(3):
        backends = connect(postgres_url)
        replicas.append(ApprovalService(backends.store, backends.bus, sweep=False))
    for replica in replicas:
        await replica.start()
    try:
        request = (await replicas[0].submit(refund_spec(), AGENT)).request
        for replica in replicas[1:]:
            await replica.get(request.id, ADMIN)  # each replica caches the pending row

        async def decide(n: int) -> bool:
            who = Principal(sub=f"approver-{n}", role="admin")
            try:
                await replicas[n % 3].decide(
                    request.id, who, "approve" if n % 2 else "reject", reason=f"#{n}"
                )
            except Conflict:
                return False
            return True

        results = await asyncio.gather(*(decide(n) for n in range(100)))
        assert sum(results) == 1
        for replica in replicas:
            final = await replica.get(request.id, ADMIN)
            assert final.status in (Status.APPROVED, Status.REJECTED)
            assert len(final.decisions) == 1
        await replicas[0].store.settle()
        for replica in replicas:
            await replica.store.settle()
        await replicas[0].audit_log.seal()
        types = [e.type for e in await replicas[0].audit_events(ADMIN)]
        assert types.count("request.approved") + types.count("request.rejected") == 1
        assert types.count("decision.refused") == 99
        verification = await replicas[0].verify_audit(ADMIN)
        assert verification.ok and verification.sealed == 101 and verification.unsealed == 0
    finally:
        for replica in replicas:
            await replica.aclose()
