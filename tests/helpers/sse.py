"""Reading Server-Sent Events frames as a browser's EventSource does."""

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


def frames(raw: bytes) -> list[dict[str, str]]:
    """Every frame of one write to the client (several events may go out together)."""
    return [frame(part + b"\r\n\r\n") for part in raw.split(b"\r\n\r\n")[:-1]]
