"""SQL as data: one schema and numbered migrations per dialect, and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _read(dialect: str, name: str) -> str:
    return files(__package__).joinpath(dialect, name).read_text(encoding="utf-8")


@cache
def queries(dialect: str) -> dict[str, str]:
    """The named queries of ``<dialect>/queries.sql``."""
    text = _read(dialect, "queries.sql")
    parts = _NAME.split(text)
    return {name: sql.strip() for name, sql in zip(parts[1::2], parts[2::2], strict=True)}


def schema(dialect: str) -> str:
    return _read(dialect, "schema.sql")


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """The dialect's migrations in order. Their versions must run 1, 2, 3 … without gaps."""
    found = []
    for entry in files(__package__).joinpath(dialect, "migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {found}")
    return tuple(found)
