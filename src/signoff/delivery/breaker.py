"""A channel that keeps failing rests instead of being tried for every delivery (a circuit
breaker per channel, per worker).

Without it, a channel that is down costs a claim, a send and a write for every delivery it
has, again at every retry: on an embedded gate, whose worker shares the loop and the store
with the calls, that load is latency added to every gated call. After ``trip_after``
failures in a row the channel *rests* for a backoff that grows with each further failure;
its deliveries are not claimed meanwhile (they keep their attempts). When the rest is over
one delivery goes out as a probe; if it succeeds the channel is closed again and the rest
follow, if it fails the channel rests longer. A refusal (a 410, a bad request) is an answer:
the channel is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Breakers"]

#: failures in a row before a channel rests
TRIP_AFTER = 3


@dataclass(slots=True)
class _State:
    failures: int = 0
    rest_until: float = 0.0
    probing: bool = False


class Breakers:
    """The health of each channel as one worker has seen it."""

    def __init__(
        self,
        backoff: Callable[[int], float],
        *,
        trip_after: int = TRIP_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff
        self._trip_after = trip_after
        self._clock = clock
        self._states: dict[str, _State] = {}

    def _open(self) -> dict[str, _State]:
        return {c: s for c, s in self._states.items() if s.failures >= self._trip_after}

    def skipped(self) -> list[str]:
        """Channels whose deliveries the ordinary claim leaves alone (resting, or waiting on
        their probe)."""
        return sorted(self._open())

    def due_probes(self) -> list[str]:
        """Channels whose rest is over and that have no probe out: one delivery each."""
        now = self._clock()
        return sorted(c for c, s in self._open().items() if s.rest_until <= now and not s.probing)

    def probing(self, channel: str) -> None:
        self._states[channel].probing = True

    def released(self, channel: str) -> None:
        """A delivery of ``channel`` is done, whatever came of it: its probe, if it was one,
        is no longer out (a probe whose request was gone tells nothing of the channel)."""
        if (state := self._states.get(channel)) is not None:
            state.probing = False

    def answered(self, channel: str) -> None:
        """The channel took a delivery (or refused one for good): it is up."""
        self._states.pop(channel, None)

    def failed(self, channel: str) -> None:
        state = self._states.setdefault(channel, _State())
        state.failures += 1
        state.probing = False
        if state.failures >= self._trip_after:
            rests = state.failures - self._trip_after + 1
            state.rest_until = self._clock() + self._backoff(rests)

    def next_probe_in(self) -> float | None:
        """Seconds until the next rest ends, or None when no channel rests."""
        ends = [s.rest_until for s in self._open().values() if not s.probing]
        return max(min(ends) - self._clock(), 0.0) if ends else None
