"""Type names shared by every layer: aliases only, no behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: a JSON object as Python holds it
JSONObject = dict[str, Any]

#: a clock returns seconds since the epoch, like :func:`time.time`; tests inject their own
Clock = Callable[[], float]
