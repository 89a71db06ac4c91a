"""Finding the same approval request again for a call that has no stable id.

A framework that runs the tool itself (Claude Code, an upstream MCP server) asks the gate
with :meth:`~signoff.Gate.authorize`. When the caller has an id that survives retries and
restarts, that id is the call's ``tool_call_id`` and the gate does the rest. When it has none
(an MCP client that sends no id; a Claude Code session resumed after a crash, where the model
asks again with a new tool_use id), the call is known by a digest of its tool and arguments,
numbered by repeat:

    call-<digest>-1, call-<digest>-2, …

The first of these whose request has not ended is this call's request: one still pending
(a retry waits for the same decision), or approved and not yet used (a retry after a crash
runs it, once). A request that has ended (run and recorded, claimed, refused, expired,
cancelled) is passed over, so the next identical call asks a human again instead of reusing
an old answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from signoff.canonical import digest
from signoff.errors import ConfigError
from signoff.gate import Gate
from signoff.models import Run, Status
from signoff.outcome import CallStatus, Outcome

#: how many ended requests of one identical call are passed over at most
MAX_REPEATS = 1000
#: what the model is told when it stopped waiting before anyone decided (``hold``)
STILL_PENDING = (
    "A person has been asked to approve this call; it has not run. Call the tool again "
    "with the same arguments later: it runs once it is approved."
)


class CallFinder:
    """Authorizes calls by id when there is one, else by digest (see the module docstring).

    Remembers, per run and digest, the first repeat not known to have ended, so a long run
    of identical calls is not looked through from the start every time.
    """

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._next: dict[str, int] = {}

    async def authorize(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        run: Run,
        call_id: str | None = None,
        hold: float | None = None,
    ) -> Outcome:
        """The call's outcome once decided; with ``hold``, after at most that many seconds a
        ``PENDING`` outcome instead (the request stays; calling again picks it up)."""
        if run.run_id is None:  # nothing to find a request again by: ask, and wait
            return await self.gate.authorize(name, args, tool_call_id=call_id, run=run)
        for _ in range(MAX_REPEATS):
            key, found = await self._find(name, args, run, call_id)
            if found.status is not CallStatus.PENDING or found.request is None:
                return found
            if hold is not None:
                return await self._hold(name, args, run, key, found, hold)
            decided = await self.gate.authorize(name, args, tool_call_id=key, run=run)
            if decided.status is CallStatus.ALREADY_CONSUMED and call_id is None:
                continue  # an identical call waiting beside this one took that approval
            return decided
        raise ConfigError(f"more than {MAX_REPEATS} identical calls of {name} in run {run.run_id}")

    async def _find(
        self, name: str, args: Mapping[str, Any], run: Run, call_id: str | None
    ) -> tuple[str, Outcome]:
        """The call's key and its request, without waiting (an approved one is claimed)."""
        if call_id is not None:
            found = await self.gate.authorize(name, args, tool_call_id=call_id, run=run, wait=False)
            return call_id, found
        base = "call-" + digest({"tool": name, "args": dict(args)})[:24]
        slot = f"{run.run_id}/{base}"
        start = self._next.get(slot, 1)
        for repeat in range(start, start + MAX_REPEATS):
            key = f"{base}-{repeat}"
            found = await self.gate.authorize(name, args, tool_call_id=key, run=run, wait=False)
            if not ended(found):
                return key, found
            self._next[slot] = max(self._next.get(slot, 1), repeat + 1)
        raise ConfigError(f"more than {MAX_REPEATS} identical calls of {name} in run {run.run_id}")

    async def _hold(
        self, name: str, args: Mapping[str, Any], run: Run, key: str, found: Outcome, hold: float
    ) -> Outcome:
        """Wait up to ``hold`` seconds for a decision without claiming anything meanwhile
        (so giving up never loses an approval), then settle the call or say it still waits."""
        assert found.request is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        pause = 0.05
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)
            if (await self.gate.get(found.request.id)).status is not Status.PENDING:
                return await self.gate.authorize(name, args, tool_call_id=key, run=run, wait=False)
        return replace(found, message=STILL_PENDING)


def ended(outcome: Outcome) -> bool:
    """Whether a found request is over: run (result recorded), claimed, refused, expired."""
    if outcome.request is None:
        return False
    if outcome.status in (CallStatus.EXECUTED, CallStatus.FAILED):
        return outcome.request.outcome is not None
    return outcome.status in (
        CallStatus.ALREADY_CONSUMED,
        CallStatus.REJECTED,
        CallStatus.TIMEOUT,
        CallStatus.CANCELLED,
        CallStatus.RESPONDED,
    )
