"""Invariants 3 and 8 under kill -9: nothing accepted is lost, no approved call runs twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.config import Config, Settings
from signoff.connect import connect, signing_keys
from signoff.models import Status
from signoff.service import ApprovalService
from signoff.stores.base import ListQuery
from tests.conftest import ADMIN
from tests.helpers.postgres import DATABASES

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 1500
ROUNDS = 12
# the one key every incarnation of the worker, and the checker, signs and verifies with (as
# every replica of a PostgreSQL cluster shares one)
SIGNING_KEY = "m3Qx2yqV9yW0qkY8nFh1v1m6k8Zb5m2mW2kq8bVt3Ns"


def start_worker(url: str, exec_log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.crash_worker", url, str(exec_log), str(TOTAL)],
        cwd=ROOT,
        env={**os.environ, "SIGNOFF_SIGNING_KEY": SIGNING_KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def complete_lines(text: str) -> list[str]:
    """Lines the worker finished writing before it died (a cut-off last line is dropped)."""
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]


async def check(url: str, exec_log: Path, approved: set[str], done: dict[int, str]) -> Counter[int]:
    runs = Counter(int(x) for x in exec_log.read_text().split()) if exec_log.exists() else Counter()
    # at most once, always
    assert all(count == 1 for count in runs.values()), runs
    backends = connect(url)
    keys = signing_keys(url, Config(), Settings(signing_key=SIGNING_KEY))
    async with ApprovalService(backends.store, backends.bus, sweep=False, keys=keys) as service:
        for request_id in approved:
            # every approval the worker saw committed is still there
            assert (await service.get(request_id, ADMIN)).status is Status.APPROVED
        for n, request_id in done.items():
            request = await service.get(request_id, ADMIN)
            assert request.outcome is not None and request.outcome.status == "succeeded"
            assert runs[n] == 1
        page = await service.list_requests(ListQuery(limit=10_000), ADMIN)
        for request in page.items:
            if request.outcome is not None:
                assert runs[int(request.args["n"])] == 1
        assert (await service.verify_audit(ADMIN)).ok
        # idempotency: one request per call, however many restarts
        calls = Counter(r.tool_call_id for r in page.items)
        assert all(count == 1 for count in calls.values()), calls
    return runs


@pytest.fixture(params=["sqlite", "postgres"])
def crash_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
        return
    url = DATABASES.fresh()
    yield url
    DATABASES.drop(url)


@pytest.mark.slow
async def test_sigkill_at_random_points_loses_nothing_and_runs_nothing_twice(
    crash_url: str, tmp_path: Path
) -> None:
    """A process (on SQLite, the one writer; on PostgreSQL, one replica) killed with SIGKILL
    mid-write, again and again: every write it was told had committed is there."""
    rng = random.Random(20261122)
    db, exec_log = crash_url, tmp_path / "exec.log"
    approved: set[str] = set()
    done: dict[int, str] = {}
    kills = 0
    for _ in range(ROUNDS):
        worker = start_worker(db, exec_log)
        assert worker.stdout is not None
        before_ready = []
        while (line := worker.stdout.readline()) and line.strip() != "ready":
            before_ready.append(line)
        time.sleep(rng.uniform(0.0, 0.25))
        worker.send_signal(signal.SIGKILL)
        out, _ = worker.communicate(timeout=30)
        out = "".join(before_ready) + out
        kills += worker.returncode == -signal.SIGKILL
        for line in complete_lines(out):
            kind, *rest = line.split()
            if kind == "approved":
                approved.add(rest[0])
            elif kind == "done":
                done[int(rest[0])] = rest[1]
        await check(db, exec_log, approved, done)
    assert kills >= ROUNDS - 1, "the worker should have been killed mid-work"

    # a last run to completion: every call is resolved, and still none ran twice
    worker = start_worker(db, exec_log)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    lines = complete_lines(out)
    assert lines[-1] == "finished"
    for line in lines:
        kind, *rest = line.split()
        if kind == "done":
            done[int(rest[0])] = rest[1]
    runs = await check(db, exec_log, approved, done)
    # every call either ran exactly once, or was consumed just before a kill and is
    # (rightly) never retried: at most once, never twice
    assert set(runs) | (set(range(TOTAL)) - set(done)) == set(range(TOTAL))
    assert len(done) + (TOTAL - len(done)) == TOTAL
    assert len(done) >= TOTAL - ROUNDS * 8
