"""The "human-in-the-loop approval with Anthropic" guide, with signoff.

The model calls publish_blog_post as usual. The gate asks a human whose role is publisher
or higher, waits, and runs the tool only if they approve; if they reject, the model is told
why. The approver's role comes from their verified token, not from the message.

    signoff serve &                                        # the approval server
    export SIGNOFF_TOKEN=$(signoff token --sub alice --role publisher)
    signoff watch                             # the approver, in another terminal
    export AGENT_TOKEN=$(signoff token --agent blog-agent)
    python examples/anthropic_hitl/anthropic_agent.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from anthropic import AsyncAnthropic

from signoff import Gate, Policy
from signoff.integrations.anthropic import run_agent

gate = Gate(os.environ.get("SIGNOFF_URL", "http://127.0.0.1:8000"), token=os.environ["AGENT_TOKEN"])


@gate.tool(
    policy=Policy(
        min_role="publisher",  # editor < publisher < admin
        reason=lambda ctx: f"Publish the blog post {ctx.args['title']!r}",
    )
)
async def publish_blog_post(title: str) -> dict[str, Any]:
    """Publish a blog post to the website. Requires human approval."""
    print(f"Publishing blog post: {title}")  # in production, call your CMS here
    return {"published": True, "title": title}


async def main() -> None:
    async with AsyncAnthropic() as client, gate:
        result = await run_agent(
            client,
            gate,
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[
                {
                    "role": "user",
                    "content": "Publish the blog post called 'Introducing our new API'",
                }
            ],
            tools=[publish_blog_post],
        )
    print(result.final_text)


if __name__ == "__main__":
    asyncio.run(main())
