"""The bus for one process: events only ever come from this process's own writes."""

from __future__ import annotations

from signoff.bus.base import Bus


class MemoryBus(Bus):
    """Delivers each published event to this process's watchers and listeners, and no more."""
