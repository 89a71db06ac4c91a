"""The ``signoff`` command (docs/cli.md).

Every failure ends with one line on stderr, ``signoff: <what is wrong>``, and a non-zero exit.
"""

from __future__ import annotations

import sys

import click
import typer

from signoff.cli import (
    approver_cmds,
    audit_cmds,
    delivery_cmds,
    grant_cmds,
    login_cmds,
    mcp_cmds,
    policy_cmds,
    runs_cmds,
    serve_cmds,
)
from signoff.cli._common import _USAGE_ERRORS, app
from signoff.errors import SignoffError
from signoff.safe_text import printable

#: the command groups, registered on ``app`` when imported
COMMANDS = (
    approver_cmds,
    audit_cmds,
    delivery_cmds,
    grant_cmds,
    login_cmds,
    mcp_cmds,
    policy_cmds,
    runs_cmds,
    serve_cmds,
)

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command; turn every error into one line and an exit code."""
    try:
        code = app(args=argv, prog_name="signoff", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        message = exc.format_message()
        if message:  # empty after "no arguments: here is the help"
            print(f"signoff: {printable(message)}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SignoffError as exc:
        # one line: a driver's multi-line message is joined, control characters escaped
        print(f"signoff: {printable(' '.join(exc.message.split()))}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
