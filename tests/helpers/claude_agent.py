"""A Claude Agent SDK agent in its own process, for the crash test and the docs' example.

The real Claude Code CLI (bundled with ``claude-agent-sdk``) plays the agent loop against the
fake model at $FAKE_MODEL_URL; its files live under $CLAUDE_HOME, its working folder is
$CLAUDE_CWD; the gate is embedded on the SQLite file $AGENT_DB. Bash runs for real: the
scripted model's commands append lines to a log file, so a test counts the runs.

Usage: python -m tests.helpers.claude_agent "PROMPT" [SESSION_ID_TO_RESUME]
Prints the final text of the run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ResultMessage

from signoff import Gate, Policy
from signoff.integrations.claude_agent import ClaudeApprovals

MODEL = "claude-sonnet-4-5"


def cli_options(model_url: str, home: str, cwd: str, **options: Any) -> ClaudeAgentOptions:
    """Options that point the bundled Claude Code CLI at a local model API, offline."""
    env = {
        "ANTHROPIC_BASE_URL": model_url,
        "ANTHROPIC_API_KEY": "test-key",
        "HOME": home,
        "CLAUDE_CONFIG_DIR": os.path.join(home, ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    return ClaudeAgentOptions(cwd=cwd, model=MODEL, env=env, **options)


async def converse(options: ClaudeAgentOptions, prompt: str) -> ResultMessage:
    """One prompt through Claude Code, to its result."""
    async with ClaudeSDKClient(options) as client:
        await client.query(prompt)
        async for message in client.receive_response():
            if isinstance(message, ResultMessage):
                return message
    raise AssertionError("Claude Code ended without a result")


async def main(prompt: str, resume: str | None) -> None:
    gate = Gate(f"sqlite:///{os.environ['AGENT_DB']}")
    approvals = ClaudeApprovals(
        gate, agent_id="coder", policies={"Bash": Policy(min_role="publisher", timeout="1h")}
    )
    base = cli_options(
        os.environ["FAKE_MODEL_URL"],
        os.environ["CLAUDE_HOME"],
        os.environ["CLAUDE_CWD"],
        resume=resume,
    )
    async with gate:
        result = await converse(approvals.options(base), prompt)
    print(result.result, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
