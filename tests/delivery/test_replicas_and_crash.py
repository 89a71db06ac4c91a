"""Two replicas on one PostgreSQL database deliver each delivery once; ``signoff serve``
killed with -9 before a delivery went out delivers it after a restart."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from signoff.auth import Verifier
from signoff.config import parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime, build_channels, make_context
from signoff.service import ApprovalService
from signoff.stores.outbox import DeliveryQuery, DeliveryStatus
from tests.acceptance.conftest import ROOT, Served, server_env
from tests.conftest import AGENT, refund_spec
from tests.delivery.world import FAST, hook_config
from tests.helpers.channels import KEY, free_port, serve, whsec


async def test_two_replicas_deliver_each_delivery_once(postgres_url: str) -> None:
    port, secret = free_port(), whsec()
    config = parse_config(hook_config(f"http://127.0.0.1:{port}/hook", secret), environ={})
    replicas = []
    for _ in range(2):
        backends = connect(postgres_url)
        service = ApprovalService(backends.store, backends.bus, config=config)
        await service.start()
        runtime = ChannelRuntime(service, build_channels(config), options=FAST)
        replicas.append((service, runtime))
    async with serve(port, []) as receiver:
        for service, runtime in replicas:
            verifier = Verifier(KEY, config.auth, config.roles)
            await runtime.start(make_context(service, verifier, KEY, f"http://127.0.0.1:{port}"))
        try:
            for n in range(30):
                service = replicas[n % 2][0]
                await service.submit(refund_spec(tool_call_id=f"c{n}"), AGENT)
            await receiver.wait_for(30, timeout=20)
            await asyncio.sleep(0.5)  # anything sent twice would have arrived by now
            ids = [r.headers["webhook-id"] for r in receiver.received]
            assert len(ids) == len(set(ids)) == 30
            delivered = await replicas[0][0].store.list_deliveries(DeliveryQuery(limit=100))
            assert len(delivered) == 30
            assert all(d.status is DeliveryStatus.DELIVERED and d.attempts == 1 for d in delivered)
        finally:
            for service, runtime in replicas:
                await runtime.aclose()
                await service.aclose()


@pytest.mark.slow
def test_serve_killed_before_delivering_delivers_after_restart(tmp_path: Path) -> None:
    hook_port, secret = free_port(), whsec()
    config = hook_config(f"http://127.0.0.1:{hook_port}/hook", secret)
    lines = [
        "[channels.hook]",
        'type = "webhook"',
        f'url = "{config["channels"]["hook"]["url"]}"',
        "timeout_s = 1",
        "[[routes]]",
        'when = "true"',
        'notify = ["hook"]',
    ]
    (tmp_path / "signoff.toml").write_text("\n".join(lines) + "\n")
    env = server_env(f"sqlite:///{tmp_path / 'signoff.db'}")
    env["SIGNOFF_CONFIG"] = str(tmp_path / "signoff.toml")
    env["SIGNOFF_CHANNEL_HOOK_SECRET"] = secret  # the secret from the environment
    served = Served(tmp_path, free_port(), env)
    served.start()
    try:
        agent = served.token("--agent", "support-bot")
        body = {"tool": "issue_refund", "args": {"order_id": "ORD-1", "amount": 250}}
        answer = httpx.post(
            f"{served.url}/v1/requests",
            json=body,
            headers={"Authorization": f"Bearer {agent}"},
            timeout=10,
        )
        assert answer.status_code in (200, 201), answer.text
        request_id = answer.json()["id"]
        time.sleep(0.3)  # the receiver is not up yet: the delivery fails and waits
        served.stop(signal.SIGKILL)
        assert secret not in (tmp_path / "serve.log").read_text()
        received = _receive_while(served, hook_port, tmp_path)
        assert [e["requestId"] for e in received] == [request_id]
        assert received[0]["type"] == "approval_request"
    finally:
        served.close()


def _receive_while(served: Served, port: int, folder: Path) -> list[dict[str, object]]:
    """Run a verifying receiver in a process of its own while the server restarts."""
    out = folder / "received.jsonl"
    receiver = subprocess.Popen(
        [sys.executable, "-m", "tests.delivery.receiver", str(port), str(out)],
        cwd=ROOT,
        env={**served.env, "HOOK_SECRET": served.env["SIGNOFF_CHANNEL_HOOK_SECRET"]},
    )
    try:
        time.sleep(1.0)
        served.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            if out.exists() and out.read_text().strip():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
