"""The buses' shared fixtures: one store URL of each kind, and a process on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from signoff.connect import Backends, connect
from signoff.service import ApprovalService
from tests.helpers.postgres import DATABASES

KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = str(request.param)
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'bus.db'}"
    else:
        database = DATABASES.fresh()
        yield database
        DATABASES.drop(database)


@asynccontextmanager
async def process(url: str) -> AsyncIterator[tuple[ApprovalService, Backends]]:
    """A process's service on ``url``, with the store and bus the composition root picks."""
    backends = connect(url)
    service = ApprovalService(backends.store, backends.bus, sweep=False)
    async with service:
        yield service, backends
