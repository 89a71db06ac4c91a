"""The approval server (HTTP API, live events, dashboard)."""

from __future__ import annotations

from signoff.server.app import create_app

__all__ = ["create_app"]
