"""``signoff demo``: the server and the demo agent; a request appears, is approved through
the API, and the demo agent finishes (issue 5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def read_until(
    process: subprocess.Popen[str], marker: str, lines: list[str], timeout: float = 30
) -> str:
    assert process.stdout is not None
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("the demo stopped:\n" + "".join(lines))
        lines.append(line)
        if marker in line:
            return line
    raise AssertionError(f"no {marker!r} in:\n" + "".join(lines))


@pytest.mark.slow
def test_the_demo_agent_waits_for_approvals_and_finishes(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path}/demo.db"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SIGNOFF_SECRET"):
        env.pop(key, None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "signoff", "demo", "--port", str(port), "--db", db],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        link = read_until(demo, "Dashboard: ", lines).split("Dashboard: ", 1)[1].strip()
        token = read_until(demo, "Approver token: ", lines).split(": ", 1)[1].strip()
        assert link.startswith(f"http://127.0.0.1:{port}/login?token=")
        assert httpx.get(link, timeout=10).status_code == 200  # the sign-in page (not used up)
        url = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 30
        pending: list[dict[str, object]] = []
        while time.time() < deadline and len(pending) < 3:
            pending = httpx.get(
                f"{url}/v1/requests", params={"status": "pending"}, headers=admin
            ).json()["items"]
            time.sleep(0.1)
        tools = sorted(str(r["tool"]) for r in pending)
        assert tools == ["delete_account", "issue_refund", "publish_blog_post"], tools
        # the read-only lookup and the $40 refund needed nobody
        read_until(demo, "rf_ord-1001", lines)
        # approve everything through the API; the account deletion needs a second admin
        ids = [r["id"] for r in pending]
        batch = httpx.post(
            f"{url}/v1/decisions", headers=admin, json={"ids": ids, "decision": "approve"}
        ).json()
        assert [r["status"] for r in batch["results"]] == [200, 200, 200]
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "signoff",
                "token",
                "--sub",
                "second-admin",
                "--role",
                "admin",
                "--db",
                db,
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        deletion = next(r for r in pending if r["tool"] == "delete_account")
        done = httpx.post(
            f"{url}/v1/requests/{deletion['id']}/decisions",
            headers={"Authorization": f"Bearer {second}"},
            json={"decision": "approve"},
        ).json()
        assert done["status"] == "approved"
        read_until(demo, "The demo agent has finished", lines)
        told = "".join(lines)
        assert "publish_blog_post ran" in told and "delete_account ran" in told
        assert "rf_ord-1002" in told
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=20)
        finally:
            if demo.poll() is None:
                demo.kill()
            assert demo.stdout is not None
            demo.stdout.close()
