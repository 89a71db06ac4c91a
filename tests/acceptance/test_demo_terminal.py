"""``signoff demo`` (the terminal demo) driven through a pseudo-terminal, as a person would."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pexpect
import pytest

ROOT = Path(__file__).resolve().parents[2]


Spawn = Callable[..., "pexpect.spawn[str]"]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``signoff demo`` in a pseudo-terminal; what it showed is printed on failure."""
    children: list[tuple[pexpect.spawn[str], IO[str]]] = []

    def start(*args: str) -> pexpect.spawn[str]:
        env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"}
        child = pexpect.spawn(
            sys.executable,
            ["-m", "signoff", "demo", "--terminal", "--db", f"sqlite:///{tmp_path}/demo.db", *args],
            cwd=str(tmp_path),
            env=env,
            encoding="utf-8",
            timeout=30,
            dimensions=(60, 120),
        )
        log = (tmp_path / f"terminal-{len(children)}.log").open("w")
        child.logfile_read = log
        children.append((child, log))
        return child

    yield start
    for child, log in children:
        child.close(force=True)
        log.close()
        print(Path(log.name).read_text())


@pytest.mark.slow
def test_edit_then_reject_at_the_prompt(spawn: Spawn) -> None:
    child = spawn()
    # the read-only lookup and the small refund need nobody
    child.expect("lookup_order")
    # (pexpect matches with re.DOTALL: a greedy .* would run across lines)
    child.expect(r'Model is told: \{"order_id": "ORD-1002"')
    child.expect(r'Model is told: \{"refund_id": "rf_ord-1001"')
    # the $250 refund waits for us: edit the amount down
    child.expect("Refund \\$250.00 for ORD-1002")
    child.expect(r"\[e\]dit")
    child.sendline("e")
    child.expect(r"amount \[250\.0\]")
    child.sendline("100")
    child.expect("Approve with these changes")
    child.sendline("y")
    child.expect("Approved")
    child.expect(r"modified_by_approver")
    child.expect(r'"approved": 100')
    # the blog post: reject with a reason, which the model is told
    child.expect("Publish the blog post")
    child.expect("Approve this call")
    child.sendline("n")
    child.expect("Reason")
    child.sendline("Not before the launch")
    child.expect("approval_rejected")
    child.expect("Not before the launch")
    child.expect("still pending")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0


@pytest.mark.slow
def test_a_too_low_role_cannot_approve(spawn: Spawn) -> None:
    child = spawn("--role", "editor")
    child.expect("Refund \\$250.00")
    child.expect("Approve this call")
    child.sendline("y")
    child.expect(re.escape("Could not decide"))
    child.expect("needs 'publisher' or higher")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)


def test_bad_role_is_one_line_and_non_zero(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "signoff",
            "demo",
            "--terminal",
            "--role",
            "wizard",
            "--db",
            "memory://",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "signoff: unknown role 'wizard'; the roles are ['editor', 'publisher', 'admin']"
    ]
