"""SQL as data: one schema and numbered migrations per dialect, and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from signoff.errors import StoreError

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


def pending(known: tuple[Migration, ...], applied: set[int]) -> list[Migration]:
    """The migrations not yet ``applied``, in order; StoreError when the database has one
    this code does not know (it is newer than this signoff)."""
    unknown = sorted(applied - {m.version for m in known})
    if unknown:
        raise StoreError(
            f"the database has schema versions {unknown} that this signoff does not know: "
            "it is newer than this signoff; upgrade signoff"
        )
    return [m for m in known if m.version not in applied]


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """The dialect's migrations in order of their versions. A version may be missing (work
    merged from branches that each took numbers; a database records each version it applied,
    so a late one is applied when it arrives), but none may be taken twice."""
    found = []
    for entry in files(__package__).joinpath(dialect, "migrations").iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or not all(v > 0 for v in versions):
        raise RuntimeError(f"{dialect} migrations repeat a number: {versions}")
    return tuple(found)
