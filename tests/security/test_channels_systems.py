"""Attacks on the channels for systems: forged, altered, expired, spent and raced callback
URLs; callbacks that the approver's checks refuse; redirects and agent-written addresses
that try to send events elsewhere; broker decisions with no token, a bad token, a token of
the wrong kind, identity in the payload, replays and garbage. Nothing of these may decide
anything, and every refusal that names a real request is in the audit log."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from standardwebhooks import Webhook

from signoff.channels import callback_token
from signoff.channels.base import DeliveryFailed
from signoff.channels.brokers.base import BrokerChannel
from signoff.channels.webhook import WebhookChannel, WebhookSettings
from signoff.models import ApprovalRequest, Status
from tests.helpers.brokers import make_channel, publisher
from tests.helpers.channels import (
    KEY,
    Harness,
    Received,
    Receiver,
    free_port,
    harness,
    serve,
    unique,
    whsec,
)

SECRET = whsec()


def webhook(url: str, **settings: Any) -> WebhookChannel:
    data: dict[str, Any] = {
        "type": "webhook",
        "url": url,
        "secret": SECRET,
        "principal": {"sub": "ops-bot", "role": "publisher"},
        "timeout_s": 2,
    }
    data.update(settings)
    return WebhookChannel("ops-hook", WebhookSettings.model_validate(data))


class Site:
    """A harness, a started webhook channel, and the server with its routes."""

    def __init__(self, h: Harness, channel: WebhookChannel, receiver: Receiver) -> None:
        self.h, self.channel, self.receiver = h, channel, receiver
        self.http = httpx.AsyncClient(timeout=10)

    async def callback(self, **overrides: Any) -> tuple[ApprovalRequest, str]:
        request = await self.h.submit(**overrides)
        before = len(self.receiver.received)
        await self.channel.send(self.h.notice(request))
        got = await self.receiver.wait_for(before + 1)
        url = json.loads(got[-1].body)["callbackUrl"]
        assert isinstance(url, str)
        return request, url

    def url_for(self, token: str, channel: str = "ops-hook") -> str:
        return f"{self.h.public_url}/channels/webhook/{channel}/callback/{token}"


@asynccontextmanager
async def open_site(**settings: Any) -> AsyncIterator[Site]:
    async with harness() as h:
        channel = webhook(f"http://127.0.0.1:{h.port}/hook", **settings)
        await channel.start(h.context)
        async with serve(h.port, channel.routes()) as receiver:
            site = Site(h, channel, receiver)
            yield site
            await site.http.aclose()
        await channel.aclose()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with open_site() as made:
        yield made


async def still_pending(site: Site, request: ApprovalRequest) -> None:
    assert (await site.h.get(request.id)).status is Status.PENDING


# -- callback URLs -------------------------------------------------------------------------


async def test_forged_and_altered_callbacks_are_404_and_decide_nothing(site: Site) -> None:
    request, url = await site.callback()
    other, _ = await site.callback(args={"order_id": "ORD-2", "amount": 3})
    token = url.rsplit("/", 1)[1]
    rid, expires, mac = token.split(".")
    later = str(int(expires) + 86400)
    attempts = [
        site.url_for(f"{rid}.{expires}.{'A' * 43}"),  # a guessed MAC
        site.url_for(f"{other.id}.{expires}.{mac}"),  # another request, this MAC
        site.url_for(f"{rid}.{later}.{mac}"),  # a later expiry
        site.url_for(token + "x"),
        site.url_for(rid),
        # made with another server's key, or for another channel
        site.url_for(callback_token.mint(b"k" * 48, "ops-hook", rid, request.expires_at)),
        site.url_for(callback_token.mint(KEY, "other-hook", rid, request.expires_at)),
        site.url_for(callback_token.mint(KEY, "other-hook", rid, request.expires_at), "x"),
    ]
    for attempt in attempts:
        response = await site.http.post(attempt, json={"approved": True})
        assert response.status_code == 404, attempt
    for r in (request, other):
        await still_pending(site, r)
        # a forged token names no request anyone may trust: nothing is written for it
        assert await site.h.refusals(r.id) == []
    # the real one still works
    assert (await site.http.post(url, json={"approved": True})).status_code == 200


async def test_an_expired_callback_is_404_and_audited(site: Site) -> None:
    request, url = await site.callback(policy={"min_role": "publisher", "timeout_s": 60})
    site.h.offset["s"] = 61
    response = await site.http.post(url, json={"approved": True})
    assert response.status_code == 404
    (refusal,) = await site.h.refusals(request.id)
    assert "expired" in refusal.body["data"]["message"]


async def test_racing_posts_to_one_callback_decide_once(site: Site) -> None:
    request, url = await site.callback()
    answers = await asyncio.gather(
        *(site.http.post(url, json={"approved": True}) for _ in range(5)),
        site.http.post(url, json={"approved": False, "reason": "no"}),
    )
    assert sorted(a.status_code for a in answers) == [200] + [404] * 5
    decided = await site.h.get(request.id)
    assert len(decided.decisions) == 1


async def test_a_get_or_a_head_decides_nothing(site: Site) -> None:
    request, url = await site.callback()
    for method in ("GET", "HEAD", "PUT"):
        response = await site.http.request(method, url)
        assert response.status_code == 405
    await still_pending(site, request)


async def test_a_body_too_large_is_413_and_does_not_spend_the_url(site: Site) -> None:
    _, url = await site.callback()
    huge = {"approved": True, "reason": "x" * 300_000}
    assert (await site.http.post(url, json=huge)).status_code == 413
    assert (await site.http.post(url, json={"approved": True})).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "overrides"),
    [
        # the principal's role is below the request's floor
        ({"approved": True}, 403, {"policy": {"min_role": "admin", "timeout_s": 300}}),
        # a field the policy does not let be edited
        ({"approved": True, "modifiedParams": {"order_id": "ORD-9"}}, 422, {}),
        # an edit that breaks the tool's schema
        ({"approved": True, "modifiedParams": {"amount": -5}}, 422, {}),
        # arguments other than those the receiver saw
        ({"approved": True, "seen_digest": "sha256:not-what-it-saw"}, 409, {}),
    ],
)
async def test_the_approvers_checks_hold_through_a_callback(
    site: Site, body: dict[str, Any], status: int, overrides: dict[str, Any]
) -> None:
    request, url = await site.callback(**overrides)
    response = await site.http.post(url, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    await still_pending(site, request)
    refusals = await site.h.refusals(request.id)
    assert [e.body["via"] for e in refusals] == ["webhook"]  # the service's own audit
    assert refusals[0].body["actor"]["sub"] == "ops-bot"


async def test_the_channels_principal_may_not_approve_its_own_request() -> None:
    async with open_site(principal={"sub": "support-bot", "role": "admin"}) as site:
        request, url = await site.callback()
        response = await site.http.post(url, json={"approved": True})
        assert response.status_code == 403
        await still_pending(site, request)


async def test_quorum_counts_the_callback_as_one_approver(site: Site) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "quorum": 2}
    _, url = await site.callback(policy=policy)
    response = await site.http.post(url, json={"approved": True})
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert len(response.json()["decisions"]) == 1


async def test_signed_callbacks_refuse_an_unsigned_or_stale_post() -> None:
    async with open_site(signed_callbacks=True) as site:
        request, url = await site.callback()
        body = json.dumps({"approved": True}).encode()
        now = datetime.now(UTC)

        def signed(secret: str, at: datetime, text: str = body.decode()) -> dict[str, str]:
            return {
                "webhook-id": "msg_1",
                "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": Webhook(secret).sign("msg_1", at, text),
            }

        for headers in (
            {},
            signed(whsec(), now),
            signed(SECRET, now - timedelta(minutes=10)),
        ):
            response = await site.http.post(url, content=body, headers=headers)
            assert response.status_code == 401
        await still_pending(site, request)
        assert len(await site.h.refusals(request.id)) == 3
        good = await site.http.post(url, content=body, headers=signed(SECRET, now))
        assert good.status_code == 200, good.text


# -- where events go -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed(site: Site, status: int) -> None:
    elsewhere = f"http://127.0.0.1:{site.h.port}/elsewhere"

    async def redirect(_: Received) -> tuple[int, dict[str, str]]:
        return status, {"Location": elsewhere}

    site.receiver.behaviour = redirect
    with pytest.raises(DeliveryFailed, match=str(status)):
        await site.channel.send(site.h.notice(await site.h.submit()))
    assert site.receiver.other == []


async def test_an_agent_cannot_choose_where_events_or_decisions_go(site: Site) -> None:
    evil = f"http://127.0.0.1:{site.h.port}/elsewhere"
    _, url = await site.callback(
        args={"order_id": "ORD-1", "amount": 5, "url": evil, "callbackUrl": evil},
        context={"webhook": evil, "callbackUrl": evil},
        reason=f"see {evil}",
    )
    assert url.startswith(f"{site.h.public_url}/channels/webhook/ops-hook/callback/")
    (got,) = site.receiver.received
    assert json.loads(got.body)["parameters"]["callbackUrl"] == evil  # data, shown as data
    assert site.receiver.other == []


async def test_secrets_stay_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with harness() as h:
        hook = webhook(f"http://user:hook-pass-123@127.0.0.1:{free_port()}/hook")
        await hook.start(h.context)
        with pytest.raises(DeliveryFailed) as failed:
            await hook.send(h.notice(await h.submit()))
        await hook.aclose()
        broker = make_channel(
            "redis",
            topic="t",
            url=f"redis://:broker-pass-456@127.0.0.1:{free_port()}/0",
            decisions_topic=unique("d"),
            timeout_s=1,
        )
        await broker.start(h.context)
        with pytest.raises(DeliveryFailed) as broker_failed:
            await broker.send(h.notice(await h.submit()))
        await asyncio.sleep(0.3)  # the consumer fails to connect and logs it
        await broker.aclose()
    text = " ".join([str(failed.value), str(broker_failed.value), caplog.text])
    for secret in ("hook-pass-123", "broker-pass-456", SECRET):
        assert secret not in text
    assert "reconnecting" in caplog.text


# -- broker decisions ----------------------------------------------------------------------


def _forged(claims: dict[str, Any], key: bytes = b"not-the-server-key-but-long-enough!!") -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def _alg_none(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_broker_decisions_without_a_valid_identity_are_refused() -> None:
    decisions = unique("attack-decisions")
    async with harness() as h, publisher("redis", decisions) as publish:
        channel = make_channel("redis", topic=unique("ev"), decisions_topic=decisions)
        assert isinstance(channel, BrokerChannel)
        await channel.start(h.context)
        await asyncio.wait_for(channel.consuming.wait(), 10)
        request = await h.submit()
        now = int(time.time())
        admin = {"sub": "ada", "kind": "approver", "role": "admin", "iat": now, "exp": now + 600}
        publisher_token = h.token("paula", "publisher")

        def msg(**fields: Any) -> bytes:
            return json.dumps({"requestId": request.id, "decision": "approve", **fields}).encode()

        refused_here = [
            msg(),  # no token
            msg(token=""),
            msg(token=_forged(admin)),  # signed with another key
            msg(token=_alg_none(admin)),
            msg(token=_forged({**admin, "iat": now - 900, "exp": now - 600}, KEY)),  # expired
            msg(token=h.issuer.token("ada", kind="approver", role="admin", audience="x")),
            # identity in the payload is never read: such a message is refused outright
            msg(token=publisher_token, by="ada", role="admin"),
            msg(token=publisher_token, modifiedArgs={"amount": 1}),  # a misspelt edit
            msg(token=publisher_token, decision="reject"),  # a rejection needs a reason
            msg(token=publisher_token, decision="maybe"),
            b"\xff\xfe not json",
            b"[1, 2, 3]",
            b"",
            json.dumps({"requestId": request.id, "token": "x" * 300_000}).encode(),
            json.dumps(
                {"requestId": "apr_nosuchrequest", "decision": "approve", "token": publisher_token}
            ).encode(),
        ]
        refused_by_the_service = [
            msg(token=h.issuer.token("support-bot", kind="agent")),  # an agent's token
            msg(token=h.token("erin", "editor")),  # role too low
            msg(token=publisher_token, modified_args={"order_id": "ORD-9"}),  # not editable
        ]
        for raw in refused_here + refused_by_the_service:
            await publish(raw)
        expected = len(refused_here) + len(refused_by_the_service)
        async with asyncio.timeout(10):
            while len(await h.refusals()) < expected:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # anything else in flight lands too
        refusals = await h.refusals()
        assert len(refusals) == expected
        assert (await h.get(request.id)).status is Status.PENDING
        assert {e.request_id for e in refusals} == {request.id, "apr_nosuchrequest", None}
        trail = json.dumps([e.body for e in refusals])
        assert publisher_token not in trail  # a refusal never records the token

        # the consumer survived all of it; a replay of a good decision is refused by state
        good = msg(token=publisher_token)
        await publish(good)
        async with asyncio.timeout(10):
            while (await h.get(request.id)).status is not Status.APPROVED:
                await asyncio.sleep(0.02)
        before = len(await h.refusals(request.id))
        await publish(good)
        async with asyncio.timeout(10):
            while len(await h.refusals(request.id)) == before:
                await asyncio.sleep(0.02)
        decided = await h.get(request.id)
        await channel.aclose()
    assert [(d.by, d.via) for d in decided.decisions] == [("paula", "redis")]
