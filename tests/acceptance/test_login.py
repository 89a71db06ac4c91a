"""`signoff login` end to end: the command in a pseudo-terminal against a real `signoff
serve`, the confirmation in Chromium after signing in to the dashboard with a login link,
then `signoff pending` and `signoff approve` with the stored token release a waiting agent;
`whoami`, `logout`, and a second server kept apart by its URL."""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

import pexpect
from playwright.async_api import async_playwright

from tests.acceptance.conftest import Served, finish
from tests.acceptance.test_cli import REFUND
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

WAIT_MS = 15_000


def spawn_login(served: Served, *args: str) -> pexpect.spawn[str]:
    env = {**served.env, "SIGNOFF_URL": served.url}
    env.pop("DISPLAY", None)  # no browser is opened from the test's terminal
    return pexpect.spawn(
        sys.executable,
        ["-m", "signoff", "login", "--name", "test laptop", *args],
        cwd=str(served.folder),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )


async def confirm_in_chromium(served: Served, code: str, sub: str, role: str) -> str:
    """Sign in to the dashboard the usual way (a login link), then confirm ``code`` on
    /device. Returns the confirmation page's text."""
    link = served.signoff("login-link", "--sub", sub, "--role", role, check=True).stdout.strip()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(WAIT_MS)
            await page.goto(link)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(served.url + "/")
            await page.goto(f"{served.url}/device?user_code={code}")
            await page.get_by_role("button", name="Continue").click()
            await page.locator("#device-name").wait_for()
            shown = await page.locator("main").inner_text()
            assert "test laptop" in shown and code in shown
            assert f"act as {sub}" in " ".join(shown.split())
            await page.get_by_role("button", name="Confirm: sign this device in").click()
            await page.get_by_role("heading", name="Device signed in").wait_for()
            return shown
        finally:
            await browser.close()


async def test_login_in_a_terminal_confirm_in_chromium_then_approve(
    served: Served, tmp_path: Path
) -> None:
    served.env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    login = spawn_login(served)
    login.expect(r"one-time code: ([B-Z]{4}-[B-Z]{4})")
    assert isinstance(login.match, re.Match)
    code = str(login.match.group(1))
    login.expect("Waiting for you to confirm")
    shown = await confirm_in_chromium(served, code, "paul", "publisher")
    assert "publisher" in shown
    login.expect(r"Signed in to \S+ as paul \(publisher\)")
    login.expect(pexpect.EOF)
    login.close()
    assert login.exitstatus == 0

    stored = tmp_path / "config" / "signoff" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert set(json.loads(stored.read_text())) == {served.url}

    # a waiting agent, released by the stored token (no --token, no SIGNOFF_TOKEN)
    agent = served.agent(REFUND)
    [request] = served.pending(approver=None)
    approved = served.signoff("approve", request["id"], "--reason", "fine", check=True)
    assert f"{request['id']}: approved" in approved.stdout
    result = finish(agent)
    assert result["status"] == "executed"
    decided = json.loads(served.signoff("show", request["id"], "--json", check=True).stdout)
    assert [(d["by"], d["role"]) for d in decided["decisions"]] == [("paul", "publisher")]

    whoami = served.signoff("whoami", check=True).stdout
    assert re.search(r"paul \(publisher\) on http://127\.0\.0\.1:\d+", whoami), whoami
    assert "test laptop" in whoami

    # another server (another URL) is not signed in by this login
    other = served.signoff("pending", "--url", "http://127.0.0.1:9")
    assert other.returncode != 0 and "signoff login" in other.stderr

    out = served.signoff("logout", check=True).stdout
    assert "Signed out" in out
    assert json.loads(stored.read_text()) == {}
    after = served.signoff("pending")
    assert after.returncode != 0 and "signoff login" in after.stderr
