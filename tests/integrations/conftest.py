"""Fixtures shared by the provider tests: a gate, the shop's tools on it, and the local
server that plays the model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from signoff import Gate

from .fake_providers import FakeModel, Shop


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    g = Gate("memory://")
    yield g
    await g.aclose()


@pytest.fixture
def shop(gate: Gate) -> Shop:
    return Shop(gate)


@pytest.fixture
async def model() -> AsyncIterator[FakeModel]:
    async with FakeModel() as fake:
        yield fake
