"""Reading one Server-Sent Events frame as a browser's EventSource does."""

from __future__ import annotations


def frame(raw: bytes) -> dict[str, str]:
    """One SSE frame's fields (``data`` lines joined with a line break, as EventSource
    joins them)."""
    assert raw.endswith(b"\r\n\r\n")
    fields: dict[str, str] = {}
    for line in raw.decode().split("\r\n")[:-2]:
        name, _, value = line.partition(": ")
        fields[name] = f"{fields[name]}\n{value}" if name in fields else value
    return fields
