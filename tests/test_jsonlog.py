"""Logs as JSON lines carry the request they are about (issue 14: structured logs)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from signoff.jsonlog import about, configure
from tests.conftest import AGENT, refund_spec
from tests.delivery.world import world
from tests.helpers.channels import Received


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """Logging set up as `signoff serve --log-format json` does, into a buffer; the test
    runner's own handlers are put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure("json", logging.INFO, out)
    try:
        yield out
    finally:
        root.handlers, root.level = handlers, level


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_record_is_one_json_object_with_its_request(logged: io.StringIO) -> None:
    log = logging.getLogger("signoff.test")
    with about("apr_123"):
        log.warning("something about %s", "it", extra={"channel": "hook"})
    log.warning('outside, with "quotes"\nand a newline')
    inside, outside = lines(logged)
    assert inside["request_id"] == "apr_123" and inside["message"] == "something about it"
    assert inside["level"] == "WARNING" and inside["logger"] == "signoff.test"
    assert inside["channel"] == "hook" and "time" in inside
    assert outside["request_id"] is None and str(outside["message"]).endswith("and a newline")


async def test_the_delivery_worker_logs_name_the_request(logged: io.StringIO) -> None:
    async def failing(_: Received) -> tuple[int, dict[str, str]]:
        return 500, {}

    async with world() as w:
        w.receiver.behaviour = failing
        created = (await w.service.submit(refund_spec(), AGENT)).request
        async with asyncio.timeout(10):
            while not any("retrying" in str(r["message"]) for r in lines(logged)):
                await asyncio.sleep(0.02)
    retried = [r for r in lines(logged) if "retrying" in str(r["message"])]
    assert retried and all(r["request_id"] == created.id for r in retried)
