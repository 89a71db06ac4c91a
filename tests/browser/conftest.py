"""Browser tests: Debian's Chromium driven by Playwright against a real server on loopback.

One server and one browser serve every test in this folder (one event loop for the whole
package); each test gets fresh browser contexts, so cookies never leak from one test to
the next. Every page is watched for script errors and Content-Security-Policy violations,
which fail the test. Nothing is downloaded: Chromium is the system's (``apt-get install
chromium``), and the tests talk to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from signoff import Gate, Policy, Run
from signoff.config import Config
from signoff.delivery import ChannelRuntime
from signoff.outcome import Outcome
from signoff.server.session import login_link
from signoff.service import ApprovalService
from tests.server.conftest import SECRET, Live, start_live

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # a second "site" for the identity provider, so that its redirect back is cross-site
    # as in production; it is still this machine
    "--host-resolver-rules=MAP idp.test 127.0.0.1",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
#: how long a test waits for something to show up in the browser
WAIT_MS = 10_000


class OffsetClock:
    """The real time, shifted: lets a test write history "in the past"."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Served:
    live: Live
    server: uvicorn.Server
    task: asyncio.Task[None]
    clock: OffsetClock

    def link(self, sub: str, role: str) -> str:
        return login_link(SECRET, self.live.config, self.live.url, sub, role)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(
    folder: Path,
    config: Config | None = None,
    *,
    channels: Callable[[ApprovalService], ChannelRuntime] | None = None,
) -> Served:
    """A server on a free loopback port, in this event loop."""
    clock = OffsetClock()
    folder.mkdir(parents=True, exist_ok=True)
    live, server, task = await start_live(folder, config, clock, channels=channels)
    return Served(live, server, task, clock)


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    running = await serve(tmp_path_factory.mktemp("browser-server"))
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    await launched.close()


@dataclass
class Watched:
    """A browser context whose pages are watched for script errors and CSP violations."""

    context: BrowserContext
    problems: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        def on_console(message: Any) -> None:
            text = message.text
            if message.type == "error" and (
                "Content Security Policy" in text or "Refused to" in text
            ):
                self.problems.append(f"CSP: {text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        return page

    async def new_page(self) -> Page:
        return self.watch(await self.context.new_page())


class Tabs:
    """Browser contexts opened for one test, closed (and checked) when it ends."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[Watched] = []

    async def blank(self, viewport: dict[str, int] | None = None) -> Page:
        """A page in a fresh context: no cookies, nobody signed in."""
        context = await self.browser.new_context(
            viewport=viewport or LAPTOP,  # type: ignore[arg-type]
            accept_downloads=True,
        )
        context.set_default_timeout(WAIT_MS)
        watched = Watched(context)
        self.opened.append(watched)
        return await watched.new_page()

    async def signed_in(
        self, where: Served, sub: str, role: str, viewport: dict[str, int] | None = None
    ) -> Page:
        """A page signed in through a login link, showing the live queue."""
        page = await self.blank(viewport)
        await page.goto(where.link(sub, role))
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(where.live.url + "/")
        await page.locator("#live-status[data-state=live]").wait_for()
        return page

    async def close(self) -> list[str]:
        problems = [p for w in self.opened for p in w.problems]
        for watched in self.opened:
            await watched.context.close()
        return problems


@pytest_asyncio.fixture(loop_scope="package")
async def tabs(browser: Browser) -> AsyncIterator[Tabs]:
    opened = Tabs(browser)
    yield opened
    problems = await opened.close()
    assert not problems, problems


OpenPage = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="package")
async def open_page(tabs: Tabs, served: Served) -> OpenPage:
    """``await open_page(sub, role)``: a page signed in through a login link, on the queue."""

    async def opener(
        sub: str = "paul",
        role: str = "publisher",
        *,
        viewport: dict[str, int] | None = None,
        target: Served | None = None,
    ) -> Page:
        return await tabs.signed_in(target or served, sub, role, viewport)

    return opener


# -- the agent's side -------------------------------------------------------------------


@dataclass
class Agent:
    """An agent on a remote gate (as in its own process), with tools that record what they
    ran with."""

    gate: Gate
    executed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tasks: list[asyncio.Task[Outcome]] = field(default_factory=list)

    def call(self, tool: str, args: dict[str, Any], run_id: str) -> asyncio.Task[Outcome]:
        """Start a gated call; it waits for the human in the background."""
        task = asyncio.create_task(
            self.gate.call(
                tool,
                args,
                tool_call_id=f"toolu_{run_id}",
                run=Run(agent_id="support", run_id=run_id),
            )
        )
        self.tasks.append(task)
        return task


REFUND_CONTEXT = {
    "why": "The customer's parcel arrived damaged; photos attached to the ticket.",
    "affected": "Order ORD-1 and the customer's card",
    "reversible": False,
    "alternatives": ["Store credit", "Send a replacement"],
}


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def agent(served: Served) -> AsyncIterator[Agent]:
    gate = Gate(served.live.url, token=served.live.agent_token("support-bot"))
    await gate.start()
    agent = Agent(gate)

    def ran(name: str, args: dict[str, Any]) -> None:
        agent.executed.setdefault(name, []).append(args)

    @gate.tool(
        policy=Policy(
            min_role="publisher",
            reason=lambda ctx: f"Refund ${ctx.args['amount']} for {ctx.args['order_id']}",
            timeout="5m",
            editable=["amount"],
            risk="high",
            context=REFUND_CONTEXT,
        )
    )
    async def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
        ran("issue_refund", {"order_id": order_id, "amount": amount})
        return {"refund_id": f"rf_{order_id.lower()}", "amount": amount}

    @gate.tool(
        policy=Policy(
            min_role="editor",
            reason=lambda ctx: f"Publish “{ctx.args['title']}”",
            timeout="5m",
            risk="medium",
        )
    )
    async def publish_post(title: str) -> str:
        ran("publish_post", {"title": title})
        return f"published {title}"

    @gate.tool(policy=Policy(min_role="publisher", reason="Rotate the API key", timeout=3))
    async def rotate_key(service: str) -> str:
        ran("rotate_key", {"service": service})
        return "rotated"

    yield agent
    for task in agent.tasks:
        task.cancel()
    await asyncio.gather(*agent.tasks, return_exceptions=True)
    await gate.aclose()


async def card_for(page: Page, run_id: str, tool: str) -> Any:
    """The queue card of the call with ``run_id`` (waits until it arrives)."""
    request_id = await request_id_of(page, run_id, tool)
    card = page.locator(f'li.card[data-id="{request_id}"]')
    await card.wait_for()
    return card


async def request_id_of(page: Page, run_id: str, tool: str) -> str:
    """The id of the request the agent's call ``run_id`` made (read from the API)."""
    for _ in range(200):
        found = await page.evaluate(
            """async (tool) => {
                const r = await fetch(`/v1/requests?status=pending&tool=${tool}&limit=200`);
                return (await r.json()).items;
            }""",
            tool,
        )
        for item in found:
            if item["run"]["run_id"] == run_id:
                return str(item["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending request for run {run_id}")
