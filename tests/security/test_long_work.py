"""Long work (statistics, verifying the audit chain) never runs on the event loop, and many
callers asking at once cost one run: a flood of such requests cannot stall the server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signoff import audit_check
from signoff.server import stats as stats_module
from tests.server.conftest import Live, start_live, stop_live


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    info, server, task = await start_live(tmp_path)
    yield info
    await stop_live(server, task)


async def some_requests(live: Live, n: int) -> None:
    async with live.client(live.agent_token()) as agent:
        for i in range(n):
            await agent.post("/v1/requests", json={"tool": f"t{i % 3}", "args": {"i": i}})


async def test_parallel_stats_calls_share_one_run_off_the_loop(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    await some_requests(live, 30)
    runs: list[str] = []
    real = stats_module.summarize

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats_module, "summarize", counted)
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        answers = await asyncio.gather(*(admin.get("/v1/stats?since=7d") for _ in range(8)))
        assert all(a.status_code == 200 for a in answers)
        assert {a.json()["requests"] for a in answers} == {30}
        assert len(runs) == 1, runs  # eight callers, one computation
        assert runs[0] != threading.main_thread().name  # and not on the event loop's thread
        other = await admin.get("/v1/stats?since=24h")  # another period is its own answer
        assert other.status_code == 200 and len(runs) == 2


async def test_parallel_audit_verifications_share_one_run_off_the_loop(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    await some_requests(live, 10)
    threads: list[str] = []
    real = audit_check.ChainCheck.feed

    def feed(self: audit_check.ChainCheck, events: Any) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(0.5)  # a long chain: the other callers arrive while this one runs
        real(self, events)

    monkeypatch.setattr(audit_check.ChainCheck, "feed", feed)
    async with live.client(live.approver_token("ada", role="admin")) as admin:
        answers = await asyncio.gather(*(admin.get("/v1/audit/verify") for _ in range(6)))
    assert all(a.status_code == 200 and a.json()["ok"] for a in answers)
    assert len(threads) == 1 and threads[0] != threading.main_thread().name
