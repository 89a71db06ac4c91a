"""Every command's ``--help`` says what its source says, wrapped to the terminal.

Two defects this holds off: help rendered as Rich markup ate config sections written in
brackets ("else [server] public_url" printed as "else  public_url"), and a docstring's own
line breaks came through in the command lists, leaving lines cut short mid-sentence.
"""

from __future__ import annotations

import inspect
import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from signoff import __version__
from signoff.cli import app

WIDTH = 80
#: a config section as the help names it: [server], [runs], [audit] …
SECTION = re.compile(r"\[[a-z_.]+\]")


def commands() -> Iterator[tuple[list[str], Any]]:
    """Every command and group below the root, with the words that reach it (typer's own
    click commands: a group is what has ``commands``)."""
    stack: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(([*path, name], sub))


ALL = sorted(commands(), key=lambda item: item[0])


def rendered(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output


def helps(command: Any) -> list[str]:
    return [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "signoff" for p, _ in ALL])
def test_help_keeps_every_config_section_it_names(path: list[str], command: Any) -> None:
    named = {section for text in helps(command) for section in SECTION.findall(text)}
    shown = " ".join(rendered(path).replace("│", " ").split())
    for section in named:
        assert section in shown, f"{' '.join(path)} --help lost {section}"


def fits(line: str, next_word: str, room: int) -> bool:
    """Whether ``next_word`` would have fitted at the end of ``line`` (then the line was
    broken by hand, not wrapped)."""
    return len(line.rstrip()) + 1 + len(next_word) <= room


def panel_entries(text: str, title: str) -> Iterator[list[str]]:
    """The entries of a panel (``╭─ Commands ─…``): each its lines, inside the border."""
    inside, entry = False, None
    for line in text.splitlines():
        if line.startswith("╭─ ") and f" {title} " in line:
            inside = True
            continue
        if not inside:
            continue
        if line.startswith("╰"):
            break
        body = line.strip("│").rstrip()
        if body[:2].strip():  # a new entry starts at the panel's edge
            if entry:
                yield entry
            entry = [body]
        elif entry is not None:
            entry.append(body)
    if entry:
        yield entry


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "signoff" for p, _ in ALL])
def test_help_wraps_sentences_to_the_width(path: list[str], command: Any) -> None:
    text = rendered(path)
    room = WIDTH - 4  # the panel's border and padding
    for entry in panel_entries(text, "Commands"):
        for line, after in itertools.pairwise(entry):
            word = after.split()[0]
            assert not fits(line, word, room), f"cut short in {path}: {line.strip()!r}"
    # the description above the panels: paragraphs of lines indented by one space
    lines = text.splitlines()
    for line, after in itertools.pairwise(lines):
        if line.startswith(" ") and after.startswith(" ") and line.strip() and after.strip():
            if line.lstrip().startswith("Usage:") or after.lstrip().startswith("•"):
                continue  # the usage line, and a list's next item, stand apart
            word = after.split()[0]
            assert not fits(line, word, WIDTH - 1), f"cut short in {path}: {line.strip()!r}"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) or "signoff" for p, _ in ALL])
def test_a_list_in_a_docstring_stays_a_list(path: list[str], command: Any) -> None:
    """Markdown joins a paragraph's lines: lines meant to stand apart (the forms of a
    command) are written as a list, and each item starts a line of its own."""
    items = [
        line.strip()[2:]
        for line in inspect.cleandoc(command.help or "").splitlines()
        if line.strip().startswith("- ")
    ]
    shown = [line.strip() for line in rendered(path).splitlines()]
    for item in items:
        first = " ".join(item.replace("`", "").split()[:4])
        assert any(line.startswith(f"• {first}") for line in shown), (path, item)


def test_version_prints_the_packages_version() -> None:
    """CONTRACT.md §1: ``signoff --version`` prints the version (and runs nothing else)."""
    result = CliRunner().invoke(app, ["--version", "pending"])
    assert result.exit_code == 0
    assert result.output == f"signoff {__version__}\n"
    installed = subprocess.run(
        [sys.executable, "-m", "signoff", "--version"], capture_output=True, text=True, timeout=60
    )
    assert installed.returncode == 0 and installed.stdout == f"signoff {__version__}\n"
    assert installed.stdout.split()[1] == version("signoff")  # the installed distribution's
