"""The terminal demo: a scripted agent's gated calls, decided by you at the prompt."""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

from rich.console import Console

from signoff._util import new_id, stop_task
from signoff.channels.console import Answer, decide_at_prompt
from signoff.events import EventType
from signoff.gate import Gate
from signoff.models import ApprovalRequest, DecisionKind, Principal, Run, Status
from signoff.safe_text import shown

from .tools import register

#: what the scripted agent does, in order: (tool, arguments)
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("lookup_order", {"order_id": "ORD-1002"}),
    ("issue_refund", {"order_id": "ORD-1001", "amount": 40, "reason": "late delivery"}),
    ("issue_refund", {"order_id": "ORD-1002", "amount": 250, "reason": "damaged in transit"}),
    ("publish_blog_post", {"title": "Introducing our new API"}),
]


async def _approver(gate: Gate, me: Principal, console: Console, ready: asyncio.Event) -> None:
    async with gate.approvals.follow() as feed:
        ready.set()
        async for event in feed:
            if event.type == EventType.CREATED:
                await _decide(gate, event.snapshot, me, console)


async def _decide(gate: Gate, request: ApprovalRequest, me: Principal, console: Console) -> None:
    async def carry_out(answer: Answer) -> ApprovalRequest:
        if answer.decision is DecisionKind.APPROVE:
            return await gate.approve(request, by=me, modified_args=answer.modified_args)
        if answer.decision is DecisionKind.RESPOND:
            return await gate.respond(request, answer.response, by=me)
        return await gate.reject(request, by=me, reason=answer.reason or "")

    await decide_at_prompt(request, console, carry_out)


async def run_terminal_demo(db_url: str, role: str, console: Console) -> None:
    gate = Gate(db_url)
    register(gate)
    me = Principal(sub=getpass.getuser() or "you", role=gate.roles.check(role))
    # a fresh run each time: the same run and call ids would replay the last run's calls
    run = Run(agent_id="demo-agent", run_id=new_id("run"))
    async with gate:
        ready = asyncio.Event()
        approver = asyncio.create_task(_approver(gate, me, console, ready))
        await ready.wait()
        console.print(
            f"[bold]signoff terminal demo[/] (store: {db_url}; you decide as {me.sub}, "
            f"role {me.role})"
        )
        try:
            for n, (tool, args) in enumerate(SCRIPT, 1):
                line = f"\n[bold cyan]Agent[/] calls [bold]{tool}[/]({shown(str(args))})"
                console.print(line, soft_wrap=True)
                outcome = await gate.call(tool, args, tool_call_id=f"call_{n}", run=run)
                style = "green" if not outcome.is_error else "red"
                told = shown(outcome.to_model())
                # soft wrap: JSON someone may copy must not get line breaks inserted
                console.print(f"[bold cyan]Model is told[/]: [{style}]{told}[/]", soft_wrap=True)
            pending = [r for r in await gate.pending() if r.status is Status.PENDING]
            console.print(f"\nDone. {len(pending)} request(s) still pending.")
        finally:
            await stop_task(approver)
