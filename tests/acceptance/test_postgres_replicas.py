"""Two ``signoff serve --db postgresql://…`` replicas on one database, as behind a load
balancer: an agent waits on one, a person approves on the other, and the agent resumes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import Served, finish, server_env
from tests.server.conftest import free_port

pytestmark = pytest.mark.slow

REFUND = {"order_id": "ORD-7", "amount": 250}


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Served, Served]]:
    servers: list[Served] = []
    try:
        for name in ("one", "two"):
            folder = tmp_path / name
            folder.mkdir()
            server = Served(folder, free_port(), server_env(postgres_url))
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
    # both replicas appended to one chain
    verified = json.loads(two.signoff("audit", "verify", "--json", token=admin).stdout)
    assert verified["ok"] is True and verified["events"] == 4
