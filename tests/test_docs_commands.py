"""Every ``signoff …`` command the docs show parses: its commands and options exist.

Parsed, not run (no server here): a command the docs teach that the CLI refuses is a defect
either way. This caught ``signoff deliveries --status failed``, which docs/cli.md showed and
the CLI refused until the bare group became its list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from signoff.cli import app

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```(?:console|sh|bash|shell|text)?\n(.*?)```", re.S)
ENV = re.compile(r"^(?:[A-Z_]+=\S+\s+)+")


def documented() -> Iterator[tuple[str, str]]:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in BLOCK.findall(path.read_text()):
            for raw in block.splitlines():
                line = ENV.sub("", raw.strip().removeprefix("$ "))
                if line == "signoff" or line.startswith("signoff "):
                    # what follows the command itself: a comment, a pipe, the background
                    line = re.split(r"\s+(?:#|\||>|&&)\s|\s+&$", line)[0]
                    yield str(path.relative_to(ROOT)), line


COMMANDS = sorted(set(documented()))


def parse(line: str) -> None:
    """Parse ``line`` as the CLI would, down to its last subcommand; raises what it would."""
    command: Any = typer.main.get_command(app)
    args, name, ctx = shlex.split(line)[1:], "signoff", None
    while True:
        ctx = command.make_context(name, list(args), parent=ctx)
        if not hasattr(command, "commands"):
            return
        protected = getattr(ctx, "_protected_args", None)
        rest = [*(protected if protected is not None else ctx.protected_args), *ctx.args]
        if not rest:
            return
        name, command, args = command.resolve_command(ctx, rest)


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 15  # the extraction finds them (it would pass vacuously if not)


@pytest.mark.parametrize(("path", "line"), COMMANDS, ids=[f"{p}: {c}" for p, c in COMMANDS])
def test_a_documented_command_parses(path: str, line: str) -> None:
    parse(line)
