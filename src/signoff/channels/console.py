"""The terminal as an approval channel: show a request, ask approve / reject / edit.

Used by ``signoff watch`` (against a server) and by the terminal demo (in process). Only
the presentation and the questions live here; who decides, and through which interface,
is the caller's business.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from signoff._util import human_duration
from signoff.decisions import json_or_text, typed_answer
from signoff.errors import InvalidArguments, SignoffError
from signoff.models import ApprovalRequest, DecisionKind
from signoff.safe_text import printable
from signoff.safe_text import shown as safe
from signoff.types import JSONObject

Prompt = Callable[[str], Awaitable[str]]

_RISK_STYLE = {"low": "green", "medium": "yellow", "high": "red", "critical": "bold red"}


@dataclass(frozen=True, slots=True)
class Answer:
    decision: DecisionKind
    reason: str | None = None
    modified_args: JSONObject | None = None
    #: a ``respond`` decision's answer: what the model receives in the tool's place
    response: Any = None


def show(request: ApprovalRequest, console: Console, now: datetime) -> None:
    """Print one request the way an approver needs to see it."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    # every field is agent-written: shown through printable(), never as raw terminal bytes
    table.add_row("Tool", Text(printable(request.tool)))
    arguments = json.dumps(request.final_args, indent=2, ensure_ascii=False)
    table.add_row("Arguments", Text(printable(arguments, one_line=False)))
    if request.reason:
        table.add_row("Reason", Text(printable(request.reason, one_line=False)))
    risk = request.risk.value
    table.add_row("Risk", f"[{_RISK_STYLE.get(risk, 'white')}]{risk}[/]")
    for key, value in request.context.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        label = printable(key.replace("_", " ").capitalize())
        table.add_row(Text(label), Text(printable(shown, one_line=False)))
    agent = request.run.agent_id + (f" (run {request.run.run_id})" if request.run.run_id else "")
    table.add_row("Agent", Text(printable(agent)))
    policy = request.policy
    needs = f"{policy.min_role} or higher"
    if policy.quorum > 1:
        needs += f", {len(request.approvals)}/{policy.quorum} approvals so far"
    table.add_row("Needs", needs)
    if policy.editable:
        table.add_row("Editable", Text(printable(", ".join(policy.editable))))
    left = (request.expires_at - now).total_seconds()
    expiry = f"in {human_duration(left)}" if left > 0 else "now"
    table.add_row("Expires", f"{expiry} ({request.expires_at:%H:%M:%S} UTC)")
    console.print(Panel(table, title=f"Approval request {request.id}", expand=False))


class LineReader:
    """Reads answers from stdin on the event loop: no thread, no stdio buffering, and the
    terminal's modes untouched (the terminal echoes and edits lines itself). A stdin the
    loop cannot watch (a regular file) is read in a worker thread instead."""

    def __init__(self) -> None:
        self._pending = b""

    async def __call__(self, prompt: str) -> str:
        sys.stdout.write(prompt)
        sys.stdout.flush()
        while b"\n" not in self._pending:
            chunk = await self._read()
            if not chunk:
                if self._pending:
                    break
                raise KeyboardInterrupt  # end of input: stop, as Ctrl-D would
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", errors="replace").rstrip("\r")

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        ready: asyncio.Future[bytes] = loop.create_future()

        def on_ready() -> None:
            if not ready.done():
                try:
                    ready.set_result(os.read(fd, 4096))
                except OSError as exc:
                    ready.set_exception(exc)

        try:
            loop.add_reader(fd, on_ready)
        except (OSError, ValueError, RuntimeError):  # e.g. a loop that cannot watch files
            return await asyncio.to_thread(os.read, fd, 4096)
        try:
            return await ready
        finally:
            loop.remove_reader(fd)


async def ask(request: ApprovalRequest, prompt: Prompt, console: Console) -> Answer | None:
    """Ask what to do with ``request``; None means leave it for someone else."""
    allowed = request.policy.decisions
    editable = bool(request.policy.editable) and "edit" in allowed
    offered = [
        ("[y]es", "approve" in allowed),
        ("[n]o", "reject" in allowed),
        ("[e]dit", editable),
        ("[r]espond", "respond" in allowed),
        ("[s]kip", True),
    ]
    choices = " / ".join(label for label, shown_ in offered if shown_)
    while True:
        answer = (await prompt(f"Approve this call? {choices}: ")).strip().lower()
        if answer in ("y", "yes") and "approve" in allowed:
            return Answer(DecisionKind.APPROVE)
        if answer in ("n", "no") and "reject" in allowed:
            reason = ""
            while not reason:
                reason = (await prompt("Reason (the model is told it): ")).strip()
            return Answer(DecisionKind.REJECT, reason=reason)
        if answer in ("e", "edit") and editable:
            edits = await _edit(request, prompt, console)
            if edits is not None:
                return Answer(DecisionKind.APPROVE, modified_args=edits)
            continue
        if answer in ("r", "respond") and "respond" in allowed:
            while True:
                text = await prompt("Answer in the tool's place (JSON, or text): ")
                try:
                    return Answer(DecisionKind.RESPOND, response=typed_answer(text))
                except InvalidArguments as exc:
                    console.print(exc.message)
        if answer in ("s", "skip"):
            return None
        console.print(f"Please answer {choices}.")


async def _edit(request: ApprovalRequest, prompt: Prompt, console: Console) -> JSONObject | None:
    console.print("Enter new values; leave blank to keep the current one.")
    edits: JSONObject = {}
    for name in request.policy.editable:
        current = request.final_args.get(name)
        shown = json.dumps(current, ensure_ascii=False)
        text = (await prompt(printable(f"  {name} [{shown}]: "))).strip()
        if text:
            value = json_or_text(text)
            if value != current:
                edits[name] = value
    if not edits:
        console.print("Nothing changed.")
        return None
    for name, value in edits.items():
        before = json.dumps(request.final_args.get(name), ensure_ascii=False)
        after = json.dumps(value, ensure_ascii=False)
        console.print(f"  {safe(name)}: [red]{safe(before)}[/] → [green]{safe(after)}[/]")
    confirm = (await prompt("Approve with these changes? [y/n]: ")).strip().lower()
    return edits if confirm in ("y", "yes") else None


#: one reader for the whole process: it keeps what was typed ahead
READER = LineReader()


async def decide_at_prompt(
    request: ApprovalRequest,
    console: Console,
    decide: Callable[[Answer], Awaitable[ApprovalRequest]],
    *,
    prompt: Prompt = READER,
) -> None:
    """Show ``request``, ask what to do, and carry the answer out with ``decide`` (the gate's
    or the server's verbs, as the caller's identity); report what came of it."""
    console.print()
    show(request, console, datetime.now(UTC))
    answer = await ask(request, prompt, console)
    if answer is None:
        console.print("Left for someone else.")
        return
    try:
        decided = await decide(answer)
    except SignoffError as exc:
        console.print(f"[red]Could not decide: {safe(exc.message)}[/]", soft_wrap=True)
        return
    if decided.status.value == "pending":
        approvals = f"{len(decided.approvals)}/{decided.policy.quorum}"
        console.print(f"Recorded: {approvals} approvals so far.")
    elif answer.decision is DecisionKind.APPROVE:
        console.print("[green]Approved.[/]")
    elif answer.decision is DecisionKind.RESPOND:
        console.print("Answered in the tool's place; the tool does not run.")
    else:
        console.print("[red]Rejected.[/]")
