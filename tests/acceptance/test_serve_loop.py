"""``signoff serve`` runs its event loop on uvloop where it is installed (uvicorn's
``standard`` extra brings it), and on asyncio's own loop where it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest

from signoff.cli._common import _run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_a_server_runs_on_uvloop() -> None:
    assert _run(_loop_module(), fast_loop=True).startswith("uvloop")


def test_without_uvloop_a_server_runs_on_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert _run(_loop_module(), fast_loop=True).startswith("asyncio")


def test_the_other_commands_run_on_asyncios_loop() -> None:
    assert _run(_loop_module()).startswith("asyncio")
