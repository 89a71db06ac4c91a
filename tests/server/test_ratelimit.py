"""The bound on failed sign-in attempts per client address."""

from __future__ import annotations

import pytest

from signoff.errors import TooManyRequests
from signoff.server import ratelimit
from signoff.server.ratelimit import AttemptLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_past_the_limit_are_refused_until_the_window_ends() -> None:
    clock = Clock()
    limiter = AttemptLimiter(3, 60, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
        limiter.failed("10.0.0.1")
    clock.now += 20
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("10.0.0.1")
    assert refused.value.retry_after == 40
    assert "try again in 40 s" in refused.value.message
    limiter.check("10.0.0.2")  # another address is not affected
    clock.now += 40
    limiter.check("10.0.0.1")  # a new window
    limiter.failed("10.0.0.1")
    limiter.check("10.0.0.1")


def test_only_failures_count() -> None:
    limiter = AttemptLimiter(2, 60, clock=Clock())
    for _ in range(100):
        limiter.check("10.0.0.1")  # checks alone (successful sign-ins) never add up


def test_the_number_of_addresses_remembered_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_CLIENTS", 3)
    limiter = AttemptLimiter(1, 60, clock=Clock())
    for n in range(5):
        limiter.failed(f"10.0.0.{n}")
    limiter.check("10.0.0.0")  # the oldest were forgotten
    limiter.check("10.0.0.1")
    with pytest.raises(TooManyRequests):
        limiter.check("10.0.0.4")
