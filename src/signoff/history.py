"""Session-aware limits: what a run or an agent has already done, for a policy to weigh.

A policy that uses one of :data:`FUNCTIONS` (in CEL, ``run_sum('issue_refund', 'amount',
'24h') + double(args.amount) > 500.0``; in code, a condition taking ``(call, history)``)
is given a :class:`History`: a snapshot of the agent's calls read from the store before the
policy is evaluated, once per call. The history is the calls that ran or may still run:

- the policy's own unasked runs, from the store's ``executions`` ledger (kept only for
  tools whose policy uses history, so the plain pass-through path writes nothing);
- approval requests that are pending or approved (used or not), with their ``final_args``.

Rejected, expired, cancelled and responded requests never count: the tool did not run.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from signoff._util import parse_duration
from signoff.errors import ConfigError
from signoff.types import JSONObject

#: the functions a CEL condition may call, and how many arguments each takes
FUNCTIONS: Mapping[str, int] = {
    "run_count": 2,
    "run_sum": 3,
    "agent_count": 2,
    "agent_sum": 3,
    "in_flight": 1,
}
#: the longest window a limit may look back over: a bound on what one call reads
MAX_WINDOW_S = 366 * 86400.0
#: how far back ``in_flight`` sees approvals not yet used (an approval is used within
#: moments of being given; one left unused for a day is not in flight any more)
IN_FLIGHT_S = 86400.0

_NAMES = re.compile(r"\b(" + "|".join(FUNCTIONS) + r")\s*\(")
_LITERAL = r"\s*(?:'([^'\\]*)'|\"([^\"\\]*)\")\s*"
_CALL = re.compile(r"\b(" + "|".join(FUNCTIONS) + r")\s*\(((?:" + _LITERAL + r",?)*)\)")
_ARG = re.compile(_LITERAL)


def window_seconds(window: str) -> float:
    """A window such as ``"24h"`` in seconds; ConfigError when it is not one, or is
    longer than :data:`MAX_WINDOW_S`."""
    if not isinstance(window, str):
        raise ConfigError(f"a window is a duration string such as '24h', not {window!r}")
    seconds = parse_duration(window)
    if not math.isfinite(seconds) or seconds > MAX_WINDOW_S:
        raise ConfigError(f"window {window!r} is longer than the longest allowed, 366d")
    return seconds


def cel_lookback(source: str) -> float | None:
    """How far back a CEL condition's history functions look (seconds), or None when it
    calls none. The arguments must be quoted strings, so that what a call reads is known
    before it is evaluated; ConfigError naming the problem otherwise."""
    named = [m.start() for m in _NAMES.finditer(source)]
    if not named:
        return None
    calls = {m.start(): m for m in _CALL.finditer(source)}
    lookback = IN_FLIGHT_S
    for start in named:
        match = calls.get(start)
        name = _NAMES.match(source, start).group(1)  # type: ignore[union-attr]
        if match is None:
            raise ConfigError(f"the arguments of {name}(...) must be quoted strings")
        args = [a or b for a, b in _ARG.findall(match.group(2))]
        if len(args) != FUNCTIONS[name]:
            raise ConfigError(f"{name}(...) takes {FUNCTIONS[name]} arguments, not {len(args)}")
        if name != "in_flight":
            lookback = max(lookback, window_seconds(args[-1]))
    return lookback


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One call in an agent's history."""

    tool: str
    run_id: str | None
    at: datetime
    args: JSONObject
    #: pending, or approved and not yet used: it may still run
    in_flight: bool = False
    #: the ledger row's id (a call that ran, or is reserved to run, without asking)
    execution_id: str | None = None


class History:
    """An agent's calls since ``since``, as of ``now``, seen from the run ``run_id``.

    Every method raises (and a policy that calls it then asks a human) when its question
    cannot be answered truthfully: a window longer than what was read, a field that is not
    a number."""

    __slots__ = ("_rows", "now", "run_id", "since")

    def __init__(
        self, rows: Iterable[HistoryRow], *, run_id: str | None, now: datetime, since: datetime
    ) -> None:
        self._rows = tuple(rows)
        self.run_id = run_id
        self.now = now
        self.since = since

    def _select(self, tool: str, window: str, run: bool) -> list[HistoryRow]:
        start = self.now - timedelta(seconds=window_seconds(window))
        if start < self.since:
            raise ValueError(f"window {window!r} is longer than the history read for this call")
        if run and self.run_id is None:
            # calls without a run id are not one run: each starts from nothing, so a limit
            # per run could never be reached; count nothing and let the agent limits hold
            return []
        return [
            r
            for r in self._rows
            if r.tool == tool and r.at >= start and (not run or r.run_id == self.run_id)
        ]

    def run_count(self, tool: str, window: str) -> int:
        """Calls of ``tool`` in this run in the last ``window``."""
        return len(self._select(tool, window, run=True))

    def run_sum(self, tool: str, field: str, window: str) -> float:
        """The total of argument ``field`` over this run's calls of ``tool`` in ``window``."""
        return _total(self._select(tool, window, run=True), field)

    def agent_count(self, tool: str, window: str) -> int:
        """Calls of ``tool`` by this agent, in any run, in the last ``window``."""
        return len(self._select(tool, window, run=False))

    def agent_sum(self, tool: str, field: str, window: str) -> float:
        """The total of argument ``field`` over the agent's calls of ``tool`` in ``window``."""
        return _total(self._select(tool, window, run=False), field)

    def in_flight(self, tool: str) -> int:
        """The agent's requests for ``tool`` that are pending, or approved and not yet used."""
        return sum(1 for r in self._rows if r.tool == tool and r.in_flight)

    def without(self, execution_id: str) -> History:
        """This history less one ledger row: a call's own reservation, which it is not
        judged against (:meth:`signoff.call_path.CallPath` reserves before it reads)."""
        rows = (r for r in self._rows if r.execution_id != execution_id)
        return History(rows, run_id=self.run_id, now=self.now, since=self.since)

    def functions(self) -> dict[str, Any]:
        """The CEL functions, bound to this snapshot."""
        return {name: getattr(self, name) for name in FUNCTIONS}


def _total(rows: list[HistoryRow], field: str) -> float:
    total = 0.0
    for row in rows:
        value = row.args.get(field)
        # a bool is an int to Python, never an amount; a missing field is a bad limit
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"argument {field!r} of a past {row.tool} call is not a number")
        total += value
    if not math.isfinite(total):
        raise ValueError(f"the total of {field!r} is not a finite number")
    return total


def since(now: datetime, lookback_s: float) -> datetime:
    """The start of what a call with ``lookback_s`` reads."""
    return max(now - timedelta(seconds=lookback_s), datetime(1970, 1, 1, tzinfo=UTC))


class WithHistory:
    """A code condition of ``(call, history)``: called with the snapshot the gate read."""

    __slots__ = ("fn", "history_lookback")

    def __init__(self, fn: Callable[..., Any], lookback: float) -> None:
        self.fn = fn
        self.history_lookback = lookback

    def __call__(self, call: Any, history: History | None = None) -> Any:
        if history is None:
            raise RuntimeError("the agent's history of calls could not be read")
        return self.fn(call, history)


def positional_args(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` requires: two means ``(call, history)``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1  # a builtin without a signature: the one-argument convention
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def lookback(cond: object) -> float | None:
    """Seconds of history a compiled condition needs, or None when it needs none."""
    found: float | None = getattr(cond, "history_lookback", None)
    return found
