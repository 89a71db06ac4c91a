"""Text that came from an agent (or a server), made safe to show, and secrets kept out of it.

Tool names, reasons, arguments and context are agent-written. Printed raw to a terminal, a
control sequence in them could repaint the screen ("ESC[2K" and a harmless-looking tool),
move the cursor over the real text, or set the window title; bidirectional overrides can
make text read differently from what it is. :func:`printable` shows every such character
as a visible escape instead. Every terminal output of signoff goes through it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# C0 controls but tab and newline, DEL, C1 controls, bidirectional and zero-width formatting
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_ONE_LINE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = True) -> str:
    """``text`` with every control and formatting character shown as an escape (``\\x1b``).
    ``one_line=False`` keeps newlines and tabs (for multi-line values such as JSON)."""
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    return pattern.sub(_escape, text)


def shown(text: str, *, one_line: bool = True) -> str:
    """:func:`printable`, and escaped for rich's markup: for agent text inside a rich
    ``console.print`` format string."""
    from rich.markup import escape

    return escape(printable(text, one_line=one_line))


def redact(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``), for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unreadable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
