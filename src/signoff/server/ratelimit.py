"""A bound on failed sign-in attempts per client address.

Sign-in links are signed and single-use, so guessing one is hopeless; the bound is there so
that a client probing the sign-in endpoints with bad, stale or stolen-and-spent links is
refused (429 with Retry-After) instead of being answered as fast as it can ask. Only
failures count: a person signing in with good links is never slowed down. It counts per
process: each replica allows the limit on its own, which is enough for that purpose.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from signoff.errors import TooManyRequests

#: failed attempts allowed per client address in one window
SIGN_IN_ATTEMPTS = 20
SIGN_IN_WINDOW_S = 60.0
#: addresses remembered at most; past it the oldest windows are forgotten first
MAX_CLIENTS = 10_000


class AttemptLimiter:
    """At most ``limit`` failures per key in each fixed window of ``window_s`` seconds."""

    def __init__(
        self,
        limit: int = SIGN_IN_ATTEMPTS,
        window_s: float = SIGN_IN_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        what: str = "failed sign-in attempts",
    ) -> None:
        self.what = what
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key → (window start, failures)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Raise :class:`TooManyRequests` while ``key`` is over the limit."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get(key, (now, 0))
        if count >= self.limit and now - start < self.window_s:
            wait = max(1, math.ceil(start + self.window_s - now))
            raise TooManyRequests(
                f"too many {self.what} from here; try again in {wait} s",
                retry_after=wait,
            )

    def failed(self, key: str) -> None:
        """Count one failure by ``key``."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.pop(key, (now, 0))
            if now - start >= self.window_s:
                start, count = now, 0
            self._windows[key] = (start, count + 1)  # re-inserted: oldest stay first
            if len(self._windows) > MAX_CLIENTS:
                del self._windows[next(iter(self._windows))]
