"""The Claude Agent SDK with signoff deciding: the real SDK drives the real Claude Code CLI
(bundled with the SDK), which talks to a local server speaking the Anthropic Messages API
(streaming) and runs its Bash tool for real."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions, HookMatcher

from signoff import Gate, MissingDependency, Policy, Principal, Run
from signoff.integrations.claude_agent import READ_ONLY_TOOLS, ClaudeApprovals
from signoff.models import ApprovalRequest, Status
from signoff.testing import Approve, Reject, ScriptedApprover
from tests.helpers.claude_agent import cli_options, converse

from .fake_providers import FakeModel, ToolUse, say, use

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = Principal(sub="paul", role="publisher")
POLICIES = {
    "Bash": Policy(
        min_role="publisher",
        editable=["command"],
        reason=lambda ctx: f"Run: {ctx.args['command']}",
        reject_message="That command was not approved.",
    ),
    "Read": Policy(when=False),
}


class Workspace:
    """Claude Code's home and working folder, and the log its Bash commands append to."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.cwd = tmp_path / "work"
        self.home.mkdir()
        self.cwd.mkdir()
        self.log = tmp_path / "ran.log"

    def bash(self, word: str) -> ToolUse:
        return ToolUse("Bash", {"command": f"echo {word} >> {self.log}", "description": word})

    def ran(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def options(self, model: FakeModel, **options: Any) -> ClaudeAgentOptions:
        return cli_options(model.url, str(self.home), str(self.cwd), **options)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def tool_results(model: FakeModel) -> list[dict[str, Any]]:
    """Every tool_result block Claude Code sent the model, in order."""
    return [
        block
        for body in model.bodies
        for message in body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def result_text(block: dict[str, Any]) -> str:
    content = block["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def told(block: dict[str, Any]) -> Any:
    """The CONTRACT §4 JSON in a refused call's tool_result (Claude Code may put words of its
    own before and after it)."""
    text = result_text(block)
    value, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    return value


def bash_commands(decided: list[ApprovalRequest]) -> list[str]:
    return [request.args["command"] for request in decided]


async def test_an_approved_call_runs_once_and_its_outcome_is_recorded(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("approved")), say("Done."))
    approvals = ClaudeApprovals(gate, agent_id="coder", policies=POLICIES)
    async with ScriptedApprover(gate, lambda r: Approve(), by=PUBLISHER) as approver:
        result = await converse(approvals.options(ws.options(model)), "Clean up.")
    assert result.result == "Done." and ws.ran() == ["approved"]
    [(request_id, _)] = approver.decided
    request = await gate.get(request_id)
    assert request.tool == "Bash" and request.reason == f"Run: echo approved >> {ws.log}"
    assert request.run.agent_id == "coder" and request.run.run_id == result.session_id
    assert request.run.metadata["claude_tool_use_id"] == "toolu_1_0"
    assert request.outcome is not None and request.outcome.status == "succeeded"
    assert request.outcome.detail["interrupted"] is False  # Claude Code's Bash response
    [answer] = tool_results(model)
    assert not answer.get("is_error")


async def test_an_edited_call_runs_with_the_edited_input_exactly_once(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("proposed")), say("Done."))
    edit = Approve(modified_args={"command": f"echo edited >> {ws.log}"})
    approvals = ClaudeApprovals(gate, policies=POLICIES)
    async with ScriptedApprover(gate, lambda r: edit, by=PUBLISHER):
        await converse(approvals.options(ws.options(model)), "Clean up.")
    assert ws.ran() == ["edited"]
    # the model is told which argument the approver changed
    last = json.dumps(model.bodies[-1]["messages"])
    assert "modified_by_approver" in last and "echo edited" in last


async def test_a_rejected_call_tells_the_model_the_reason(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("rm")), say("Understood."))
    approvals = ClaudeApprovals(gate, policies=POLICIES)
    async with ScriptedApprover(gate, lambda r: Reject("Not on Fridays."), by=PUBLISHER):
        await converse(approvals.options(ws.options(model)), "Clean up.")
    assert ws.ran() == []
    [answer] = tool_results(model)
    assert answer["is_error"] is True
    assert told(answer) == {
        "error": "approval_rejected",
        "message": "That command was not approved. Reason: Not on Fridays.",
        "tool": "Bash",
        "parameters": {"command": f"echo rm >> {ws.log}", "description": "rm"},
    }


async def test_nobody_deciding_in_time_denies_the_call(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("late")), say("Gave up."))
    approvals = ClaudeApprovals(gate, policies={"Bash": Policy(timeout=0.5)})
    await converse(approvals.options(ws.options(model)), "Clean up.")
    assert ws.ran() == []
    [answer] = tool_results(model)
    assert told(answer)["error"] == "approval_timeout"


async def test_two_calls_in_one_turn_are_decided_apart(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("first"), ws.bash("second")), say("Done."))
    approvals = ClaudeApprovals(gate, policies=POLICIES)

    def decide(request: ApprovalRequest) -> Approve | Reject:
        return Reject("not that one") if "second" in request.args["command"] else Approve()

    async with ScriptedApprover(gate, decide, by=PUBLISHER) as approver:
        await converse(approvals.options(ws.options(model)), "Two things.")
    assert ws.ran() == ["first"] and len(approver.decided) == 2
    answers = {block["tool_use_id"]: block for block in tool_results(model)}
    assert not answers["toolu_1_0"].get("is_error")
    assert "not that one" in told(answers["toolu_1_1"])["message"]


async def test_the_callback_form_allows_edits_and_denies_with_the_message(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("one"), ws.bash("two")), say("Done."))
    approvals = ClaudeApprovals(gate, policies=POLICIES)

    def decide(request: ApprovalRequest) -> Approve | Reject:
        if "two" in request.args["command"]:
            return Reject("no")
        return Approve(modified_args={"command": f"echo ONE >> {ws.log}"})

    async with ScriptedApprover(gate, decide, by=PUBLISHER) as approver:
        result = await converse(
            approvals.options(ws.options(model), form="callback"), "Two things."
        )
    assert ws.ran() == ["ONE"]
    answers = {block["tool_use_id"]: block for block in tool_results(model)}
    assert told(answers["toolu_1_1"])["error"] == "approval_rejected"
    # can_use_tool is not told the session: the PreToolUse hook noted it
    runs = [(await gate.get(request_id)).run.run_id for request_id, _ in approver.decided]
    assert runs == [result.session_id, result.session_id]


async def test_the_hook_form_sees_calls_claude_code_would_allow_on_its_own(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    # `echo` is a read-only command: Claude Code runs it without consulting can_use_tool
    echo = ToolUse("Bash", {"command": "echo hello", "description": "say hello"})
    model.play(use(echo), say("Refused."), use(echo), say("Said it."))
    approvals = ClaudeApprovals(gate, policies=POLICIES)
    async with ScriptedApprover(gate, lambda r: Reject("no"), by=PUBLISHER) as approver:
        await converse(approvals.options(ws.options(model)), "Say hello.")
        hooked = tool_results(model)[-1]
        await converse(approvals.options(ws.options(model), form="callback"), "Say hello.")
        called_back = tool_results(model)[-1]
    assert told(hooked)["error"] == "approval_rejected"  # the hook form asked, and was told no
    assert result_text(called_back).startswith("hello")  # the callback form was never asked
    assert len(approver.decided) == 1


async def test_calls_its_policy_lets_through_run_without_asking(
    gate: Gate, model: FakeModel, ws: Workspace
) -> None:
    (ws.cwd / "notes.txt").write_text("hello")
    model.play(use(ToolUse("Read", {"file_path": str(ws.cwd / "notes.txt")})), say("Read it."))
    approvals = ClaudeApprovals(gate, allow=READ_ONLY_TOOLS)
    async with ScriptedApprover(gate, lambda r: Reject("no"), by=PUBLISHER) as approver:
        await converse(approvals.options(ws.options(model)), "Read the notes.")
    assert approver.decided == []
    [answer] = tool_results(model)
    assert "hello" in result_text(answer) and not answer.get("is_error")


async def test_when_signoff_cannot_be_reached_the_call_is_denied(
    model: FakeModel, ws: Workspace
) -> None:
    model.play(use(ws.bash("unreachable")), say("Could not."))
    remote = Gate("http://127.0.0.1:9", token="agent-token")
    approvals = ClaudeApprovals(remote, policies=POLICIES)
    await converse(approvals.options(ws.options(model)), "Clean up.")
    await remote.aclose()
    assert ws.ran() == []
    [answer] = tool_results(model)
    assert told(answer)["error"] == "approval_unavailable"


async def test_a_fixed_run_id_is_used_as_given(gate: Gate, model: FakeModel, ws: Workspace) -> None:
    model.play(use(ws.bash("x")), say("Done."))
    approvals = ClaudeApprovals(gate, run=Run(agent_id="ci", run_id="build-7"), policies=POLICIES)
    async with ScriptedApprover(gate, lambda r: Approve(), by=PUBLISHER) as approver:
        result = await converse(approvals.options(ws.options(model)), "Go.")
    request = await gate.get(approver.decided[0][0])
    assert request.run.run_id == "build-7" and request.run.session_id == result.session_id


@pytest.mark.slow
async def test_sigkill_while_waiting_then_the_session_finishes_in_a_new_process(
    model: FakeModel, ws: Workspace, tmp_path: Path
) -> None:
    """The agent process (and its Claude Code) is killed while a call waits; the call is
    approved meanwhile; a new process resumes the session: no second request, one run."""
    db = tmp_path / "agent.db"
    model.play(
        use(ws.bash("once")),  # the call that waits when the process dies
        use(ws.bash("once")),  # the resumed session: the model asks again, a new tool_use id
        say("Cleaned up."),
    )
    env = {
        **os.environ,
        "AGENT_DB": str(db),
        "FAKE_MODEL_URL": model.url,
        "CLAUDE_HOME": str(ws.home),
        "CLAUDE_CWD": str(ws.cwd),
        "PYTHONPATH": str(ROOT),
    }
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.claude_agent", "Clean up.",
        env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    gate = Gate(f"sqlite:///{db}")
    async with gate:
        async with asyncio.timeout(60):
            while not (waiting := await gate.pending()):
                await asyncio.sleep(0.05)
        [request] = waiting
        session = request.run.run_id
        assert session is not None
        # Claude Code writes its session file on its own schedule: a crash before that
        # leaves no session to resume (then a new session is a new run)
        await until_persisted(ws.home, session, "toolu_1_0")
        os.killpg(agent.pid, signal.SIGKILL)  # the agent and its Claude Code go at once
        await agent.wait()
        assert ws.ran() == []
        await gate.approve(request.id, by=PUBLISHER)

        resumed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.helpers.claude_agent", "Continue.", session,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(resumed.communicate(), 60)
        assert resumed.returncode == 0, err.decode()
        assert out.decode().strip() == "Cleaned up.", (out, err, model.refusals)
        assert ws.ran() == ["once"]  # exactly once
        assert await gate.pending() == []  # and no second request
        done = await gate.get(request.id)
        assert done.status is Status.APPROVED and done.consumed_at is not None
        assert done.outcome is not None and done.outcome.status == "succeeded"
    # the model was told the result of that one run
    assert not tool_results(model)[-1].get("is_error")


async def test_options_keep_the_callers_own_hooks(gate: Gate) -> None:
    async def mine(data: Any, tool_use_id: str | None, context: Any) -> Any:
        return {}

    own = HookMatcher(matcher="Bash", hooks=[mine])
    approvals = ClaudeApprovals(gate)
    hooked = approvals.options(ClaudeAgentOptions(hooks={"PreToolUse": [own]}))
    assert hooked.hooks is not None and hooked.can_use_tool is None
    first, ours = hooked.hooks["PreToolUse"]
    assert first is own and ours.hooks == [approvals.pre_tool_use]
    assert ours.on_failure == "block" and ours.timeout == 24 * 3600  # never fails open
    assert set(hooked.hooks) == {"PreToolUse", "PostToolUse", "PostToolUseFailure"}
    called = approvals.options(form="callback")
    assert called.can_use_tool == approvals.can_use_tool


async def until_persisted(home: Path, session: str, text: str) -> None:
    async with asyncio.timeout(30):
        while not any(text in f.read_text() for f in home.rglob(f"{session}.jsonl")):
            await asyncio.sleep(0.05)


def test_import_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)
    monkeypatch.delitem(sys.modules, "signoff.integrations.claude_agent")
    with pytest.raises(MissingDependency) as caught:
        importlib.import_module("signoff.integrations.claude_agent")
    assert caught.value.detail == {"package": "claude-agent-sdk", "extra": "claude-agent"}
