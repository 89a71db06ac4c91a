"""A broker of the test's own (Redis, NATS with JetStream, Mosquitto) on a free loopback
port, which the test may stop and start again: a restart of the machine's shared brokers
would disturb everyone else using them."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

from tests.helpers.channels import free_port

PRIVATE_KINDS = ["redis", "nats", "mqtt"]


class PrivateBroker:
    """``kind``'s server on ``port``, its data (where it keeps any) under ``folder``."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = {"redis": "redis", "nats": "nats", "mqtt": "mqtt"}[self.kind]
        return f"{scheme}://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        if self.kind == "redis":
            return [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            ]  # fmt: skip
        if self.kind == "nats":
            return [
                shutil.which("nats-server") or "/usr/sbin/nats-server",
                "-a", "127.0.0.1", "-p", str(self.port),
                "-js", "-sd", str(self.folder / "jetstream"),
            ]  # fmt: skip
        config = self.folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        return [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)]

    async def start(self) -> None:
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        async with asyncio.timeout(10):
            while not _listening(self.port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.kind} server exited with {self.process.returncode}")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
