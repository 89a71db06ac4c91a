"""Buses: how waiting calls and live streams hear about changes. No optional imports here."""

from __future__ import annotations

from signoff.bus.base import Bus, Listener, ListenerDropped, Watch

__all__ = ["Bus", "Listener", "ListenerDropped", "Watch"]
