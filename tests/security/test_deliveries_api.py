"""The deliveries endpoints, adversarially: only the highest role reads or retries them,
bad filters are 400 problem documents, and no secret (a webhook's signing secret, a URL's
password) ever shows in the API, the metrics or the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from signoff.auth import Issuer
from signoff.config import parse_config
from signoff.connect import connect
from signoff.delivery import ChannelRuntime, build_channels
from signoff.server.app import create_app
from signoff.server.http import server_config
from signoff.server.session import CSRF_HEADER, login_link
from signoff.service import ApprovalService
from signoff.stores.outbox import DeliveryQuery
from tests.delivery.world import FAST
from tests.server.conftest import SECRET, Live, free_port
from tests.server.test_session import HTML, csrf_of, sign_in

HOOK_SECRET = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFrISE="
URL_PASSWORD = "hunter2-url-password"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Live]:
    dead = free_port()  # nothing listens here: every attempt fails
    config = parse_config(
        {
            "channels": {
                "ops-hook": {
                    "type": "webhook",
                    "url": f"http://user:{URL_PASSWORD}@127.0.0.1:{dead}/hook",
                    "secret": HOOK_SECRET,
                }
            },
            "routes": [{"when": "true", "notify": ["ops-hook"]}],
        },
        environ={},
    )
    backends = connect(f"sqlite:///{tmp_path / 'server.db'}")
    service = ApprovalService(backends.store, backends.bus, config=config)
    runtime = ChannelRuntime(service, build_channels(config), options=replace(FAST, max_attempts=2))
    app = create_app(service, key=SECRET, config=config, channels=runtime)
    port = free_port()
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield Live(
        f"http://127.0.0.1:{port}", service, Issuer(SECRET, config.auth, config.roles), config
    )
    server.should_exit = True
    await task


async def _failed_delivery(live: Live) -> dict[str, Any]:
    agent = live.client(live.agent_token())
    async with agent:
        body = {"tool": "issue_refund", "args": {"order_id": "ORD-1", "amount": 250}}
        assert (await agent.post("/v1/requests", json=body)).status_code in (200, 201)
    async with live.client(live.approver_token("ada", "admin")) as admin:
        for _ in range(200):
            page = (await admin.get("/v1/deliveries", params={"status": "failed"})).json()
            if page["items"]:
                item: dict[str, Any] = page["items"][0]
                return item
            await asyncio.sleep(0.05)
    raise AssertionError("the delivery never failed")


@pytest.mark.parametrize(
    ("role", "kind"), [("publisher", "approver"), ("editor", "approver"), (None, "agent")]
)
async def test_only_the_highest_role_reads_or_retries(
    served: Live, role: str | None, kind: str
) -> None:
    failed = await _failed_delivery(served)
    token = served.agent_token() if kind == "agent" else served.approver_token("x", role or "")
    async with served.client(token) as client:
        listed = await client.get("/v1/deliveries")
        retried = await client.post(f"/v1/deliveries/{failed['id']}/retry")
    for answer in (listed, retried):
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("application/problem+json")
    async with served.client(None) as anonymous:
        assert (await anonymous.get("/v1/deliveries")).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"status": "pending' OR 1=1 --"},
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "100000"},
        {"before": "-1"},
        {"before": "1e9"},
        {"channel": "x" * 500},
    ],
)
async def test_bad_filters_are_400_problems(served: Live, params: dict[str, str]) -> None:
    async with served.client(served.approver_token("ada", "admin")) as admin:
        answer = await admin.get("/v1/deliveries", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["status"] == 400


async def test_retry_answers(served: Live) -> None:
    failed = await _failed_delivery(served)
    async with served.client(served.approver_token("ada", "admin")) as admin:
        again = await admin.post(f"/v1/deliveries/{failed['id']}/retry")
        assert again.status_code == 200
        assert again.json()["status"] == "pending" and again.json()["attempts"] == 0
        missing = await admin.post("/v1/deliveries/dlv_nope/retry")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")


async def test_secrets_never_show(served: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failed = await _failed_delivery(served)
    async with served.client(served.approver_token("ada", "admin")) as admin:
        texts = [
            (await admin.get("/v1/deliveries")).text,
            (await admin.get(f"/v1/deliveries?request_id={failed['request_id']}")).text,
            (await admin.get("/metrics")).text,
            (await admin.post(f"/v1/deliveries/{failed['id']}/retry")).text,
        ]
    texts.append(caplog.text)
    assert failed["last_error"]
    for text in texts:
        assert HOOK_SECRET not in text
        assert HOOK_SECRET.removeprefix("whsec_") not in text
        assert URL_PASSWORD not in text


# -- through the dashboard: its page and its Retry button (the session cookie) ----------------


async def _signed_in(live: Live, client: httpx.AsyncClient, sub: str, role: str) -> str:
    """Sign ``client`` in as a browser does; the page's CSRF token."""
    url = login_link(SECRET, live.config, live.url, sub, role)
    await sign_in(client, url)
    page = await client.get("/deliveries", headers=HTML)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def test_the_page_needs_a_session(served: Live) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as browser:
        page = await browser.get("/deliveries", headers=HTML)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        posted = await browser.post("/deliveries", headers=HTML)
        assert posted.status_code == 405


async def test_the_retry_button_needs_the_csrf_token_and_the_highest_role(served: Live) -> None:
    failed = await _failed_delivery(served)
    path = f"/v1/deliveries/{failed['id']}/retry"
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as browser:
        csrf = await _signed_in(served, browser, "ada", "admin")
        missing = await browser.post(path)
        assert missing.status_code == 403 and missing.json()["type"].endswith("/csrf")
        wrong = await browser.post(path, headers={CSRF_HEADER: csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        left = await served.service.store.list_deliveries(DeliveryQuery(status="failed"))
        assert failed["id"] in {d.id for d in left}  # refused: nothing was retried
        for bad in ("dlv_nope", "x" * 300, "%00", "..%2F..%2Fv1%2Fme"):
            answer = await browser.post(f"/v1/deliveries/{bad}/retry", headers={CSRF_HEADER: csrf})
            assert 400 <= answer.status_code < 500, (bad, answer.status_code)
            assert answer.headers["content-type"].startswith("application/problem+json")
        right = await browser.post(path, headers={CSRF_HEADER: csrf})
        assert right.status_code == 200 and right.json()["attempts"] == 0
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as browser:
        csrf = await _signed_in(served, browser, "paul", "publisher")
        refused = await browser.post(path, headers={CSRF_HEADER: csrf})
        assert refused.status_code == 403
        listed = await browser.get("/v1/deliveries", params={"status": "failed"})
        assert listed.status_code == 403
