"""The webhook channel against a real receiver on loopback that verifies every delivery
with the ``standardwebhooks`` package, and its callback served by uvicorn."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from signoff.channels.base import DeliveryFailed, DeliveryRefused, NoticeType
from signoff.channels.registry import channel_class
from signoff.channels.webhook import WebhookChannel, WebhookSettings, retry_after
from signoff.models import Status
from tests.helpers.channels import Harness, Received, Receiver, harness, serve, whsec

SECRET = whsec()


@dataclass
class Hooked:
    h: Harness
    channel: WebhookChannel
    receiver: Receiver
    http: httpx.AsyncClient


def make_channel(receiver_url: str, **settings: Any) -> WebhookChannel:
    data: dict[str, Any] = {
        "type": "webhook",
        "url": receiver_url,
        "secret": SECRET,
        "principal": {"sub": "ops-bot", "role": "publisher"},
        "timeout_s": 2,
    }
    data.update(settings)
    return WebhookChannel("ops-hook", WebhookSettings.model_validate(data))


@pytest.fixture
async def hooked() -> AsyncIterator[Hooked]:
    async with harness() as h:
        channel = make_channel(f"http://127.0.0.1:{h.port}/hook")
        await channel.start(h.context)
        async with serve(h.port, channel.routes()) as receiver, httpx.AsyncClient() as http:
            yield Hooked(h, channel, receiver, http)
        await channel.aclose()


def verified(got: Received, secret: str = SECRET) -> dict[str, Any]:
    """The delivery's body, as a receiver using the standardwebhooks package reads it."""
    payload: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    return payload


async def callback_url(hooked: Hooked) -> str:
    request = await hooked.h.submit()
    await hooked.channel.send(hooked.h.notice(request))
    (got,) = await hooked.receiver.wait_for(1)
    url = verified(got)["callbackUrl"]
    assert isinstance(url, str)
    return url


def test_registry_names_the_webhook_channel() -> None:
    assert channel_class("webhook") is WebhookChannel


async def test_every_event_arrives_signed_in_order(hooked: Hooked) -> None:
    h = hooked.h
    request = await h.submit()
    await hooked.channel.send(h.notice(request, NoticeType.REQUEST))
    await hooked.channel.send(h.notice(request, NoticeType.ESCALATED, step=1))
    decided = await h.service.decide(request.id, h.approver(), "approve")
    for type_ in (NoticeType.DECIDED, NoticeType.OUTCOME):
        await hooked.channel.send(h.notice(decided, type_))
    other = await h.submit(args={"order_id": "ORD-2", "amount": 5})
    for type_ in (NoticeType.REQUEST, NoticeType.CANCELLED, NoticeType.EXPIRED):
        await hooked.channel.send(h.notice(other, type_))

    got = await hooked.receiver.wait_for(7)
    bodies = [verified(g) for g in got]
    assert [b["type"] for b in bodies] == [
        "approval_request",
        "approval_escalated",
        "approval_decided",
        "tool_outcome",
        "approval_request",
        "approval_cancelled",
        "approval_expired",
    ]
    first = bodies[0]
    # the seed's fields, then the whole request
    assert first["requestId"] == request.id
    assert first["executionId"] == "r1"
    assert first["agentTag"] == "support-bot"  # an agent's agent_id is its own sub
    assert first["tool"] == "issue_refund"
    assert first["parameters"] == {"order_id": "ORD-1", "amount": 250}
    assert first["risk"] == "medium"
    assert first["status"] == "pending"
    assert first["request"]["id"] == request.id
    assert first["callbackUrl"].startswith(f"{h.public_url}/channels/webhook/ops-hook/callback/")
    assert bodies[1]["escalation"] == 1
    assert bodies[2]["status"] == "approved"
    # only an approval_request can be decided through a callback
    assert all("callbackUrl" not in b for b in bodies[1:4])
    assert got[0].headers["content-type"] == "application/json"
    assert got[0].headers["user-agent"].startswith("signoff/")


async def test_webhook_id_is_the_delivery_id_on_every_retry(hooked: Hooked) -> None:
    request = await hooked.h.submit()
    notice = hooked.h.notice(request)
    await hooked.channel.send(notice)
    hooked.h.offset["s"] = 30  # the retry is signed at its own time
    await hooked.channel.send(notice)
    first, second = await hooked.receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == notice.delivery_id
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]) + 29
    assert first.body == second.body  # the same callback URL too
    verified(first)
    verified(second)


async def test_rotation_signs_with_both_secrets() -> None:
    old, new = whsec(), whsec()
    async with harness() as h:
        channel = make_channel(f"http://127.0.0.1:{h.port}/hook", secret=new, previous_secret=old)
        await channel.start(h.context)
        async with serve(h.port, channel.routes()) as receiver:
            await channel.send(h.notice(await h.submit()))
            (got,) = await receiver.wait_for(1)
        await channel.aclose()
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    # a receiver on either secret accepts it: it can switch whenever it likes
    assert verified(got, old) == verified(got, new)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(whsec()).verify(got.body, got.headers)


async def test_a_receiver_answering_500_makes_send_fail(hooked: Hooked) -> None:
    async def fail(_: Received) -> tuple[int, dict[str, str]]:
        return 500, {}

    hooked.receiver.behaviour = fail
    with pytest.raises(DeliveryFailed, match="answered 500") as caught:
        await hooked.channel.send(hooked.h.notice(await hooked.h.submit()))
    assert caught.value.retry_after is None


async def test_a_receiver_that_times_out_makes_send_fail(hooked: Hooked) -> None:
    async def dawdle(_: Received) -> tuple[int, dict[str, str]]:
        await asyncio.sleep(1)
        return 204, {}

    hooked.receiver.behaviour = dawdle
    channel = make_channel(hooked.receiver.url, timeout_s=0.3)
    await channel.start(hooked.h.context)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match=r"did not answer within 0\.3 s"):
        await channel.send(hooked.h.notice(await hooked.h.submit()))
    assert time.monotonic() - started < 2
    await channel.aclose()


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_passed_to_the_outbox(hooked: Hooked, status: int) -> None:
    async def busy(_: Received) -> tuple[int, dict[str, str]]:
        return status, {"Retry-After": "120"}

    hooked.receiver.behaviour = busy
    with pytest.raises(DeliveryFailed) as caught:
        await hooked.channel.send(hooked.h.notice(await hooked.h.submit()))
    assert caught.value.retry_after == 120


def test_retry_after_takes_seconds_and_http_dates() -> None:
    now = time.time()
    assert retry_after("30", now) == 30
    later = email.utils.formatdate(now + 90, usegmt=True)
    assert 88 <= (retry_after(later, now) or 0) <= 91
    assert retry_after("yesterday-ish", now) is None
    assert retry_after(None, now) is None
    assert retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0


async def test_410_gone_is_refused_for_good(hooked: Hooked) -> None:
    async def gone(_: Received) -> tuple[int, dict[str, str]]:
        return 410, {}

    hooked.receiver.behaviour = gone
    with pytest.raises(DeliveryRefused, match="410"):
        await hooked.channel.send(hooked.h.notice(await hooked.h.submit()))


async def test_a_receiver_that_is_not_there_makes_send_fail(hooked: Hooked) -> None:
    from tests.helpers.channels import free_port

    channel = make_channel(f"http://127.0.0.1:{free_port()}/hook")
    await channel.start(hooked.h.context)
    with pytest.raises(DeliveryFailed, match="could not reach the receiver"):
        await channel.send(hooked.h.notice(await hooked.h.submit()))
    await channel.aclose()


async def test_the_callback_approves(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    response = await hooked.http.post(url, json={"approved": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "approved"
    assert body["decisions"][0]["by"] == "ops-bot"
    assert body["decisions"][0]["role"] == "publisher"
    assert body["decisions"][0]["via"] == "webhook"
    approved = [e for e in await hooked.h.audit(body["id"]) if e.type == "request.approved"]
    assert approved[0].actor["sub"] == "ops-bot"
    assert approved[0].actor["iss"] == "signoff:channel:ops-hook"


async def test_the_callback_approves_with_modified_params(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    response = await hooked.http.post(
        url, json={"approved": True, "reason": "half", "modifiedParams": {"amount": 125}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["final_args"] == {"order_id": "ORD-1", "amount": 125}


async def test_the_callback_rejects_with_a_reason(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    response = await hooked.http.post(url, json={"approved": False, "reason": "over limit"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["decisions"][0]["reason"] == "over limit"


async def test_a_used_callback_is_404(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    assert (await hooked.http.post(url, json={"approved": True})).status_code == 200
    again = await hooked.http.post(url, json={"approved": False, "reason": "changed my mind"})
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    request_id = url.rsplit("/", 1)[1].split(".")[0]
    assert (await hooked.h.get(request_id)).status is Status.APPROVED
    (refusal,) = await hooked.h.refusals(request_id)
    assert refusal.body["data"]["message"] == "the callback was used already"


async def test_a_request_decided_elsewhere_is_409(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    request_id = url.rsplit("/", 1)[1].split(".")[0]
    await hooked.h.service.decide(request_id, hooked.h.approver(), "approve")
    response = await hooked.http.post(url, json={"approved": True})
    assert response.status_code == 409
    assert response.json()["status"] == 409


async def test_a_body_with_a_mistake_is_422_and_does_not_spend_the_url(hooked: Hooked) -> None:
    url = await callback_url(hooked)
    for bad in (
        {"approved": "yes"},
        {"approved": False},
        {"approved": False, "reason": "no", "modifiedParams": {"amount": 1}},
        {"approved": True, "modified_params": {"amount": 1}},
        [True],
    ):
        response = await hooked.http.post(url, json=bad)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    assert (await hooked.http.post(url, content=b"{nope")).status_code == 400
    assert (await hooked.http.post(url, json={"approved": True})).status_code == 200


async def test_without_a_principal_there_is_no_callback() -> None:
    async with harness() as h:
        channel = make_channel(f"http://127.0.0.1:{h.port}/hook", principal=None)
        await channel.start(h.context)
        assert channel.routes() == []
        async with serve(h.port, channel.routes()) as receiver:
            await channel.send(h.notice(await h.submit()))
            (got,) = await receiver.wait_for(1)
        await channel.aclose()
    assert "callbackUrl" not in json.loads(got.body)


def test_settings_hide_the_secret_and_check_it() -> None:
    settings = WebhookSettings.model_validate(
        {"type": "webhook", "url": "https://ops.example.com/a", "secret": SECRET}
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    for bad in ("not-a-secret-at-all", "whsec_c2hvcnQ=", "whsec_!!!!"):
        with pytest.raises(ValidationError) as caught:
            WebhookSettings.model_validate(
                {"type": "webhook", "url": "https://ops.example.com/a", "secret": bad}
            )
        assert bad not in str(caught.value)
    for url in ("ftp://ops.example.com/", "https:///nohost", "file:///etc/passwd"):
        with pytest.raises(ValidationError):
            WebhookSettings.model_validate({"type": "webhook", "url": url, "secret": SECRET})
    with pytest.raises(ValidationError, match="extra"):
        WebhookSettings.model_validate(
            {"type": "webhook", "url": "https://a.example", "secret": SECRET, "sekret": "x"}
        )


async def test_an_unknown_principal_role_is_a_config_error() -> None:
    from signoff.errors import ConfigError

    async with harness() as h:
        channel = make_channel("http://127.0.0.1:9/hook", principal={"sub": "x", "role": "boss"})
        with pytest.raises(ConfigError, match="unknown role"):
            await channel.start(h.context)
