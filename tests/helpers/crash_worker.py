"""A process the crash test kills with SIGKILL at random moments.

It gates TOTAL calls (tool_call_id ``call-<n>`` in one run) through an embedded Gate on a
store (a SQLite file, or a PostgreSQL database as one replica of many), eight at a time
(so SQLite commits them in groups), approves each request from an in-process approver, and
runs a tool whose side effect is one line appended to EXEC_LOG. It prints, after each
commit it relies on:

    approved <request id>        the approval was committed
    done <n> <request id>        the call for n ran and its outcome was recorded

Restarted on the same store, it resumes the same calls: idempotency finds each request again.
Usage: python -m tests.helpers.crash_worker STORE_URL EXEC_LOG TOTAL
"""

from __future__ import annotations

import asyncio
import os
import sys

from signoff import CallStatus, Gate, Policy, Principal, Run
from signoff.testing import Approve, ScriptedApprover


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, exec_log: str, total: int) -> None:
    gate = Gate(url)
    log_fd = os.open(exec_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @gate.tool(policy=Policy(min_role="publisher", timeout="10m"))
    async def side_effect(n: int) -> int:
        os.write(log_fd, f"{n}\n".encode())  # the tool's effect: survives our death
        return n

    class Announcing(ScriptedApprover):
        async def _decide(self, request, seen):  # type: ignore[no-untyped-def]
            before = len(self.decided)
            await super()._decide(request, seen)
            if len(self.decided) > before:
                say(f"approved {request.id}")

    run = Run(agent_id="crash-agent", run_id="crash-run")
    async with gate, Announcing(gate, lambda r: Approve(), by=Principal("ops", "admin")):
        say("ready")
        for start in range(0, total, 8):
            batch = range(start, min(start + 8, total))
            outcomes = await asyncio.gather(
                *(
                    gate.call("side_effect", {"n": n}, tool_call_id=f"call-{n}", run=run)
                    for n in batch
                )
            )
            for n, outcome in zip(batch, outcomes, strict=True):
                if outcome.status is CallStatus.EXECUTED and outcome.request is not None:
                    say(f"done {n} {outcome.request.id}")
        say("finished")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
