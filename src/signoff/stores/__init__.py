"""Stores: where requests, their audit chain, live events and runs are kept. Importing this
package imports no optional driver; :func:`signoff.connect.connect` picks one by URL."""

from __future__ import annotations

from signoff.stores.base import Store

__all__ = ["Store"]
