"""Two ``signoff serve --db postgresql://…`` replicas on one database, as behind a load
balancer: an agent waits on one, a person approves on the other, and the agent resumes."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.acceptance.conftest import Served, finish, server_env
from tests.server.conftest import free_port

pytestmark = pytest.mark.slow

REFUND = {"order_id": "ORD-7", "amount": 250}


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Served, Served]]:
    servers: list[Served] = []
    # replicas on several machines share the key that signs the audit log's checkpoints
    seed = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    try:
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            env = {**server_env(postgres_url), "SIGNOFF_SIGNING_KEY": seed}
            env["PGAPPNAME"] = f"signoff-{name}"  # which replica holds which session
            server = Served(folder, free_port(), env)
            servers.append(server)
            server.start()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.close()


def test_an_approval_on_one_replica_releases_an_agent_waiting_on_the_other(
    replicas: tuple[Served, Served],
) -> None:
    one, two = replicas
    publisher = two.token("--sub", "paul", "--role", "publisher")
    agent = one.agent(REFUND)  # waits on replica one's event stream
    [request] = two.pending(publisher)  # the request is stored where both replicas see it
    time.sleep(0.3)  # the agent is waiting, not still submitting
    approved = two.signoff("approve", request["id"], "--reason", "fine", token=publisher)
    assert f"{request['id']}: approved" in approved.stdout, approved.stderr
    started = time.monotonic()
    result = finish(agent)
    assert time.monotonic() - started < 5  # woken by the other replica's notification
    assert result["status"] == "executed"
    assert result["request_id"] == request["id"]
    assert result["executed_args"] == [{"order_id": "ORD-7", "amount": 250.0}]
    admin = one.token("--sub", "ada", "--role", "admin")
    shown = json.loads(one.signoff("show", request["id"], "--json", token=admin).stdout)
    assert shown["status"] == "approved" and shown["outcome"]["status"] == "succeeded"
    # both replicas appended to one log, sealed under checkpoints either replica verifies
    verified = json.loads(two.signoff("audit", "verify", "--json", token=admin).stdout)
    assert verified["ok"] is True and verified["events"] == 4


def _leader(postgres_url: str) -> str | None:
    """The replica whose session holds the leader's lock (sweeps and seals)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND a.application_name LIKE 'signoff-%'"
        ).fetchone()
    return None if row is None else str(row[0])


def _create(served: Served, token: str, n: int) -> None:
    reply = httpx.post(
        f"{served.url}/v1/requests",
        headers={"Authorization": f"Bearer {token}"},
        json={"tool": "issue_refund", "args": {**REFUND, "amount": n}, "tool_call_id": f"c{n}"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text


def test_the_sealers_leader_killed_another_takes_over_and_nothing_goes_unsealed(
    replicas: tuple[Served, Served], postgres_url: str
) -> None:
    by_name = {"signoff-one": replicas[0], "signoff-two": replicas[1]}
    deadline = time.monotonic() + 15
    while (leader_name := _leader(postgres_url)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leader_name in by_name
    leader = by_name.pop(leader_name)
    [(_, other)] = by_name.items()
    agent = other.token("--agent", "support-bot")
    for n in range(20):
        _create(leader if n % 2 else other, agent, n)
    assert leader.process is not None
    leader.process.kill()  # SIGKILL: no last sealing, its session just goes
    leader.process.wait(timeout=10)
    for n in range(20, 30):
        _create(other, agent, n)
    admin = other.token("--sub", "ada", "--role", "admin")
    deadline = time.monotonic() + 30
    while True:
        result = json.loads(other.signoff("audit", "verify", "--json", token=admin).stdout)
        if (result["unsealed"] == 0 and result["sealed"] == 30) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert _leader(postgres_url) == f"signoff-{'one' if other is replicas[0] else 'two'}"
    assert result["ok"] is True, result
    assert result["sealed"] == 30 and result["unsealed"] == 0
