"""Shared helpers for the benchmarks: memory readings, percentiles, store URLs."""

from __future__ import annotations

import atexit
import os
import resource
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

#: the PostgreSQL server's maintenance database; each run makes a database of its own there
POSTGRES_ADMIN_URL = os.environ.get(
    "SIGNOFF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def store_url(db: str, folder: str | None = None) -> str:
    """A fresh store for a benchmark run: ``memory``, ``sqlite`` or ``postgres``."""
    if db == "memory":
        return "memory://"
    if db == "sqlite":
        folder = folder or tempfile.mkdtemp(prefix="signoff-bench-")
        return f"sqlite:///{folder}/bench.db"
    if db == "postgres":
        return fresh_postgres_database()
    raise SystemExit(f"unknown --db {db!r}: use memory, sqlite or postgres")


def fresh_postgres_database() -> str:
    """A new, empty database (the store migrates it), dropped when the benchmark exits, so
    that runs side by side never share one."""
    import psycopg
    from psycopg import sql

    name = f"signoff_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    atexit.register(_drop_postgres_database, name)
    return urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))


def _drop_postgres_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
