"""``signoff demo``: the server on the embedded default, and a demo agent whose risky tool
calls wait in the dashboard for a human.

Offline, the agent is a scripted model playing the seed scenarios; with ANTHROPIC_API_KEY
or OPENAI_API_KEY set, a real model gets the same prompts and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from rich.console import Console

from signoff._util import listen, new_id, stop_task
from signoff.approvals import LocalApprovals
from signoff.auth import Issuer, load_or_create_key
from signoff.config import Config, Settings
from signoff.connect import connect, data_dir, signing_keys
from signoff.errors import UsageError
from signoff.gate import Gate
from signoff.integrations._loop import AgentResult, run_tool_loop
from signoff.models import Run
from signoff.safe_text import shown
from signoff.server.app import create_app
from signoff.server.http import server_config
from signoff.server.session import login_link
from signoff.service import ApprovalService

from .scripted import SCENARIOS, Scenario, ScriptedModel
from .tools import register

DEMO_APPROVER = "demo-admin"


async def run_demo(db_url: str, host: str, port: int, settings: Settings, console: Console) -> None:
    try:
        sock = listen(host, port)
    except UsageError as exc:
        raise UsageError(f"{exc.message}; pass --port to use another") from exc
    with sock:
        await _run_demo(sock, db_url, host, settings, console)


async def _run_demo(
    sock: socket.socket, db_url: str, host: str, settings: Settings, console: Console
) -> None:
    port = sock.getsockname()[1]
    config = Config()
    backends = connect(db_url)
    keys = signing_keys(db_url, config, settings)
    service = ApprovalService(backends.store, backends.bus, config=config, keys=keys)
    key = load_or_create_key(data_dir(db_url), settings.secret)
    app = create_app(service, key=key, config=config)
    server = uvicorn.Server(server_config(app, host=host, port=port))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.02)
    base = f"http://{host}:{port}"
    issuer = Issuer(key, config.auth, config.roles)
    approver = issuer.token(DEMO_APPROVER, kind="approver", role="admin", ttl="8h")
    print(f"Dashboard: {login_link(key, config, base, DEMO_APPROVER, 'admin')}", flush=True)
    print(f"Approver token: {approver}", flush=True)
    print(
        f"API: {base} (store {db_url}). Decide in the dashboard, or: "
        f"SIGNOFF_URL={base} SIGNOFF_TOKEN=<token> signoff watch",
        flush=True,
    )
    gate = Gate(LocalApprovals(service), config=config)
    register(gate, timeout="10m")
    agent = asyncio.create_task(_agent(gate, settings, console))
    try:
        done, _ = await asyncio.wait({serving, agent}, return_when=asyncio.FIRST_COMPLETED)
        if agent in done:
            agent.result()
            print(
                "The demo agent has finished; the server keeps running (Ctrl-C to stop).",
                flush=True,
            )
            await serving
    finally:
        await stop_task(agent)
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _agent(gate: Gate, settings: Settings, console: Console) -> None:
    tools = list(gate.tools.values())
    kind = (
        "anthropic" if settings.anthropic_api_key else "openai" if settings.openai_api_key else None
    )
    label = {"anthropic": "Claude", "openai": "an OpenAI model", None: "a scripted model"}[kind]
    print(f"Demo agent: {label}, {len(SCENARIOS)} conversations.", flush=True)

    async def one(n: int, scenario: Scenario) -> None:
        run = Run(agent_id="demo-agent", run_id=new_id("run"), metadata={"scenario": n})
        console.print(f"[bold cyan]User[/]: {shown(scenario.prompt)}", soft_wrap=True)
        result = await _converse(kind, gate, tools, scenario, run)
        console.print(f"[bold cyan]Agent[/]: {shown(result.final_text)}", soft_wrap=True)
        console.file.flush()

    await asyncio.gather(*(one(n, s) for n, s in enumerate(SCENARIOS, 1)))


async def _converse(
    kind: str | None, gate: Gate, tools: list[Any], scenario: Scenario, run: Run
) -> AgentResult:
    messages: list[dict[str, Any]] = [{"role": "user", "content": scenario.prompt}]
    if kind == "anthropic":
        from anthropic import AsyncAnthropic

        from signoff.integrations.anthropic import run_agent

        async with AsyncAnthropic() as client:
            return await run_agent(
                client,
                gate,
                model="claude-sonnet-4-5",
                messages=messages,
                tools=tools,
                run=run,
                max_tokens=1024,
            )
    if kind == "openai":
        from openai import AsyncOpenAI

        from signoff.integrations.openai import run_agent as run_openai

        async with AsyncOpenAI() as client:
            return await run_openai(
                client, gate, model="gpt-4o", input=scenario.prompt, tools=tools, run=run
            )
    provider = ScriptedModel(scenario, call_prefix=run.run_id or "demo")
    return await run_tool_loop(provider, gate, tools, messages, run=run, max_turns=4)
