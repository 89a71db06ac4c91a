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

from collections.abc import Mapping
from typing import Any

from signoff.canonical import digest
from signoff.errors import ConfigError
from signoff.gate import Gate
from signoff.models import Run
from signoff.outcome import CallStatus, Outcome

#: how many ended requests of one identical call are passed over at most
MAX_REPEATS = 1000


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
        wait: bool = True,
    ) -> Outcome:
        if call_id is not None or run.run_id is None:
            return await self.gate.authorize(name, args, tool_call_id=call_id, run=run, wait=wait)
        base = "call-" + digest({"tool": name, "args": dict(args)})[:24]
        slot = f"{run.run_id}/{base}"
        start = self._next.get(slot, 1)
        for repeat in range(start, start + MAX_REPEATS):
            key = f"{base}-{repeat}"
            found = await self.gate.authorize(name, args, tool_call_id=key, run=run, wait=False)
            if ended(found):
                self._next[slot] = max(self._next.get(slot, 1), repeat + 1)
                continue
            if found.status is CallStatus.PENDING and wait:
                found = await self.gate.authorize(name, args, tool_call_id=key, run=run)
                if found.status is CallStatus.ALREADY_CONSUMED:
                    # an identical call waiting beside this one took that approval: ask anew
                    continue
            return found
        raise ConfigError(f"more than {MAX_REPEATS} identical calls of {name} in run {run.run_id}")


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
    )
