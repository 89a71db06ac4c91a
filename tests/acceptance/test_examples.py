"""The examples run unchanged: a real signoff server, the real SDKs pointed (through their
own environment variables) at a local server speaking the providers' APIs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, Served
from tests.integrations.fake_providers import FakeModel, ToolUse, say, use


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "base_var", "suffix"),
    [
        ("examples/anthropic_hitl/anthropic_agent.py", "ANTHROPIC_BASE_URL", ""),
        ("examples/openai_hitl/openai_agent.py", "OPENAI_BASE_URL", "/v1"),
    ],
)
async def test_an_example_waits_for_the_publisher(
    served: Served, script: str, base_var: str, suffix: str, tmp_path: Path
) -> None:
    title = "Introducing our new API"
    async with FakeModel(
        use(ToolUse("publish_blog_post", {"title": title})), say("Published.")
    ) as model:
        env = {
            **served.env,
            base_var: model.url + suffix,
            "ANTHROPIC_API_KEY": "test",
            "OPENAI_API_KEY": "test",
            "SIGNOFF_URL": served.url,
            "AGENT_TOKEN": served.token("--agent", "blog-agent"),
        }
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / script),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        editor = served.token("--sub", "erin", "--role", "editor")
        publisher = served.token("--sub", "alice", "--role", "publisher")
        for _ in range(300):
            pending = json.loads(
                served.signoff("pending", "--json", token=publisher, check=True).stdout
            )
            if pending:
                break
            await asyncio.sleep(0.1)
        [request] = pending
        assert request["reason"] == f"Publish the blog post {title!r}"
        assert served.signoff("approve", request["id"], token=editor).returncode != 0  # too low
        served.signoff("approve", request["id"], token=publisher, check=True)
        out, err = await asyncio.wait_for(agent.communicate(), 60)
        assert agent.returncode == 0, err.decode()
        assert f"Publishing blog post: {title}" in out.decode()
        assert out.decode().strip().endswith("Published.")
