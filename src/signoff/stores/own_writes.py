"""Which audit positions this process wrote itself, so the tail that listens for other
processes' events (a SQLite file shared without notifications: :mod:`signoff.bus.polling`)
does not read this process's own events back. Its own events reached its streams when they
were published; reading them again cost a store read, and a parse of every event, for
nothing, several times a second (8 % of a busy process's round trip, measured with
``bench/roundtrip.py``).

A write's positions are remembered only once they are back with the caller that published
them: a caller cancelled while its write committed publishes nothing, so its events are
left for the tail to find, as any other process's would be.
"""

from __future__ import annotations

import bisect

#: runs remembered at most: past this, the oldest are forgotten (and read back, harmlessly)
MAX_RUNS = 1024


class OwnWrites:
    """Runs of consecutive positions this process wrote, merged where they touch."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self) -> None:
        # two parallel sorted lists: run i is [_firsts[i], _lasts[i]]
        self._firsts: list[int] = []
        self._lasts: list[int] = []

    def add(self, positions: list[int]) -> None:
        """Remember one write's positions (consecutive: one connection appended them)."""
        if not positions:
            return
        first, last = positions[0], positions[-1]
        firsts, lasts = self._firsts, self._lasts
        if lasts and lasts[-1] + 1 == first:
            lasts[-1] = last  # the common case: it follows this process's previous write
            return
        i = bisect.bisect_left(firsts, first)
        firsts.insert(i, first)
        lasts.insert(i, last)
        # merge with the run after it, then with the run before it, where they touch
        if i + 1 < len(firsts) and lasts[i] + 1 >= firsts[i + 1]:
            lasts[i] = max(lasts[i], lasts.pop(i + 1))
            firsts.pop(i + 1)
        if i > 0 and lasts[i - 1] + 1 >= firsts[i]:
            lasts[i - 1] = max(lasts[i - 1], lasts.pop(i))
            firsts.pop(i)
        if len(firsts) > MAX_RUNS:
            del firsts[0], lasts[0]

    def through(self, after: int) -> int:
        """The furthest position ``p >= after`` such that this process wrote every position
        in ``(after, p]``: nobody else's event can lie there. Runs that end at or before
        ``after`` are forgotten: ask with ``after`` never going back."""
        firsts, lasts = self._firsts, self._lasts
        passed = bisect.bisect_right(lasts, after)
        if passed:
            del firsts[:passed], lasts[:passed]
        if firsts and firsts[0] <= after + 1:
            return lasts[0]
        return after
