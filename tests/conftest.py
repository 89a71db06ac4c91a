from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from signoff.config import Config
from signoff.models import Principal, RequestSpec, Run
from signoff.service import ApprovalService
from signoff.stores.base import Store
from signoff.stores.memory import MemoryStore
from signoff.stores.postgres import PostgresStore
from signoff.stores.sqlite import SqliteStore
from tests.helpers.postgres import DATABASES

STORE_KINDS = ["memory", "sqlite", "postgres"]


class ManualClock:
    """A clock tests move by hand; starts at the real time so datetimes look sane."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SqliteStore(tmp_path / "signoff.db")
    if kind == "postgres":
        # a database of its own, dropped after the test by the store fixture
        return PostgresStore.from_url(DATABASES.fresh(), min_size=1)
    raise AssertionError(kind)


def drop_store(store: Store) -> None:
    """Remove what :func:`make_store` made outside the test's folder."""
    if isinstance(store, PostgresStore):
        assert isinstance(store.pool.conninfo, str)
        DATABASES.drop(store.pool.conninfo)


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases() -> Iterator[None]:
    yield
    DATABASES.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh migrated PostgreSQL database, for tests that open several stores on it."""
    url = DATABASES.fresh()
    yield url
    DATABASES.drop(url)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(store_kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    s = make_store(store_kind, tmp_path)
    await s.start()
    yield s
    await s.aclose()
    drop_store(s)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def service(store: Store, clock: ManualClock) -> AsyncIterator[ApprovalService]:
    svc = ApprovalService(store, clock=clock, sweep=False)
    await svc.start()
    yield svc
    await svc.aclose()


ServiceFactory = Callable[..., ApprovalService]


@pytest.fixture
def make_service(store: Store, clock: ManualClock) -> ServiceFactory:
    def factory(config: Config | None = None) -> ApprovalService:
        return ApprovalService(store, clock=clock, sweep=False, config=config)

    return factory


AGENT = Principal(sub="support-bot", kind="agent")
OTHER_AGENT = Principal(sub="other-bot", kind="agent")
EDITOR = Principal(sub="erin", role="editor")
PUBLISHER = Principal(sub="paul", role="publisher")
PUBLISHER_2 = Principal(sub="petra", role="publisher")
ADMIN = Principal(sub="ada", role="admin")

REFUND_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}


def refund_spec(**overrides: object) -> RequestSpec:
    data: dict[str, object] = {
        "tool": "issue_refund",
        "args": {"order_id": "ORD-1", "amount": 250},
        "tool_call_id": None,
        "run": Run(agent_id="support", run_id="r1"),
        "reason": "Refund $250 for ORD-1",
        "policy": {"min_role": "publisher", "timeout_s": 300, "editable": ["amount"]},
        "args_schema": REFUND_SCHEMA,
    }
    data.update(overrides)
    return RequestSpec.model_validate(data)
