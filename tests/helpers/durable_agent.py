"""A durable agent in its own process, for the crash test.

The model is the fake provider at $FAKE_MODEL_URL (the real anthropic SDK talks to it); the
gate is embedded on the SQLite file $AGENT_DB; the tool's side effect is a line appended to
$EXEC_LOG. ``build`` is the app factory that ``signoff runs resume`` imports.

Usage: python -m tests.helpers.durable_agent RUN_ID
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import anthropic

from signoff import Gate, Policy, Run
from signoff.integrations.anthropic import run_agent
from signoff.integrations.resume import AgentApp

APP = "tests.helpers.durable_agent:build"


def build() -> AgentApp:
    gate = Gate(f"sqlite:///{os.environ['AGENT_DB']}")
    log_path = os.environ["EXEC_LOG"]

    @gate.tool(policy=Policy(min_role="publisher", timeout="1h"))
    async def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
        """Refund an order."""
        with open(log_path, "a") as log:
            log.write(f"{order_id} {amount}\n")
        return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

    client = anthropic.AsyncAnthropic(
        api_key="test", base_url=os.environ["FAKE_MODEL_URL"], max_retries=0
    )
    return AgentApp(client=client, gate=gate, tools=[issue_refund])


async def main(run_id: str) -> None:
    app = build()
    result = await run_agent(
        app.client,
        app.gate,
        model="claude-test",
        messages=[{"role": "user", "content": "Refund ORD-1: it arrived broken."}],
        tools=app.tools,
        run=Run(agent_id="durable-bot", run_id=run_id),
        app=APP,
    )
    print(result.final_text, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
