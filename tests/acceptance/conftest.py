"""A real ``signoff serve`` in a subprocess, and the ``signoff`` command run against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "acceptance-secret-that-is-long-enough-for-hs256"


@dataclass
class Served:
    folder: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None
    agents: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.folder / "serve.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "signoff", "serve", "--port", str(self.port)],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.folder / "serve.log").read_text())
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("signoff serve did not become ready")

    def stop(self, sig: int = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def signoff(
        self,
        *args: str,
        token: str | None = None,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(env or {})}
        env["SIGNOFF_URL"] = self.url
        if token is not None:
            env["SIGNOFF_TOKEN"] = token
        result = subprocess.run(
            [sys.executable, "-m", "signoff", *args],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def token(self, *args: str) -> str:
        return self.signoff("token", *args, check=True).stdout.strip()

    def agent(
        self, args: dict[str, Any], timeout: str = "5m", call_id: str = "toolu_1"
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.remote_agent",
                self.url,
                self.token("--agent", "support-bot"),
                json.dumps(args),
                timeout,
                call_id,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.agents.append(process)
        return process

    def pending(
        self, approver: str | None, count: int = 1, timeout: float = 20
    ) -> list[dict[str, Any]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            result = self.signoff("pending", "--json", token=approver, check=True)
            items: list[dict[str, Any]] = json.loads(result.stdout)
            if len(items) >= count:
                return items
            time.sleep(0.1)
        raise AssertionError(f"fewer than {count} pending requests appeared")

    def close(self) -> None:
        """Stop the agents this test started, then the server."""
        for agent in self.agents:
            if agent.poll() is None:
                agent.kill()
            agent.communicate()  # also closes its pipes
        self.stop()


def server_env(db_url: str) -> dict[str, str]:
    """The environment of a server and of the commands run against it."""
    env = {
        **os.environ,
        "SIGNOFF_SECRET": SECRET,
        "SIGNOFF_DB": db_url,
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env.pop("SIGNOFF_TOKEN", None)
    env.pop("SIGNOFF_URL", None)
    return env


def finish(process: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path, free_port(), server_env(f"sqlite:///{tmp_path}/server.db"))
    server.start()
    yield server
    server.close()
