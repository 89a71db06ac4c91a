"""The "human-in-the-loop approval with OpenAI" guide, with signoff (Responses API).

signoff serve &
export SIGNOFF_TOKEN=$(signoff token --sub alice --role publisher)
signoff watch                                          # the approver, in another terminal
AGENT_TOKEN=$(signoff token --agent blog-agent) python examples/openai_hitl/openai_agent.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from openai import AsyncOpenAI

from signoff import Gate, Policy
from signoff.integrations.openai import run_agent

gate = Gate(os.environ.get("SIGNOFF_URL", "http://127.0.0.1:8000"), token=os.environ["AGENT_TOKEN"])


@gate.tool(
    policy=Policy(
        min_role="publisher",
        reason=lambda ctx: f"Publish the blog post {ctx.args['title']!r}",
    )
)
async def publish_blog_post(title: str) -> dict[str, Any]:
    """Publish a blog post to the website. Requires human approval."""
    print(f"Publishing blog post: {title}")
    return {"published": True, "title": title}


async def main() -> None:
    async with AsyncOpenAI() as client, gate:
        result = await run_agent(
            client,
            gate,
            model="gpt-4o",
            input="Publish the blog post called 'Introducing our new API'",
            tools=[publish_blog_post],
        )
    print(result.final_text)


if __name__ == "__main__":
    asyncio.run(main())
