"""An embedded Gate whose config has channels and routes: its service sends the outbox's
deliveries (to a real webhook receiver on loopback, each verified with ``standardwebhooks``)
while it runs, and nothing once it is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from signoff import Gate, Policy, Principal
from signoff.config import parse_config
from signoff.errors import ConfigError
from signoff.events import EventType
from tests.delivery.world import hook_config
from tests.helpers.channels import free_port, serve, whsec

APPROVER = Principal(sub="ada", role="admin")


async def test_an_embedded_gates_request_reaches_a_webhook(tmp_path: Path) -> None:
    secret = whsec()
    async with serve(free_port(), []) as receiver:
        config = parse_config(hook_config(receiver.url, secret), environ={})
        gate = Gate(f"sqlite:///{tmp_path / 'gate.db'}", config=config)

        @gate.tool(policy=Policy(min_role="editor"))
        async def transfer(amount: int) -> int:
            return amount

        async with asyncio.timeout(20), gate:
            async with gate.approvals.follow() as feed:
                call = asyncio.create_task(gate.call("transfer", {"amount": 5}))
                async for event in feed:
                    if event.type == EventType.CREATED:
                        await gate.approve(event.request_id, by=APPROVER)
                        break
            outcome = await call
            assert outcome.result == 5
            got = await receiver.wait_for(3)
        events = [Webhook(secret).verify(r.body, r.headers) for r in got]
        assert [e["type"] for e in events] == [
            "approval_request",
            "approval_decided",
            "tool_outcome",
        ]
        assert {e["tool"] for e in events} == {"transfer"}

        # closed: the worker is stopped, so a request made now (through another, plain
        # gate on the same file) stays in the outbox
        plain = Gate(f"sqlite:///{tmp_path / 'gate.db'}")

        @plain.tool(policy=Policy(min_role="editor"), name="transfer")
        async def again(amount: int) -> int:
            return amount

        async with plain:
            await plain.authorize("transfer", {"amount": 6}, wait=False)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 3


def test_a_misconfigured_channel_stops_the_gate_at_once() -> None:
    # a timeout its settings refuse
    table = hook_config("http://127.0.0.1:9/hook", whsec(), timeout_s=-1)
    config = parse_config(table, environ={})
    with pytest.raises(ConfigError, match=r"channels\.hook\.timeout_s"):
        Gate("memory://", config=config)
