"""Shared helpers for the benchmarks: memory and CPU readings, percentiles, store URLs."""

from __future__ import annotations

import atexit
import os
import resource
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

#: the PostgreSQL server's maintenance database; each run makes a database of its own there
POSTGRES_ADMIN_URL = os.environ.get(
    "SIGNOFF_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: the names of the benchmarks' databases: the prefix, the process id, a random part
BENCH_DB_PREFIX = "signoff_bench_"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now, from /proc (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, from ``/proc/<pid>/stat`` (Linux);
    None when it cannot be read (gone, or on another host)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count from its end
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


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

    name = f"{BENCH_DB_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        _drop_orphans(conn)
        # registered first: interrupted half way, the database is still dropped at exit
        atexit.register(_drop_postgres_database, name)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`fresh_postgres_database` now (it is dropped at exit
    otherwise), closing whatever connections are still open to it."""
    _drop_postgres_database(database_name(url))


def _drop_postgres_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _drop_orphans(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop the databases of earlier runs whose process is gone (killed with SIGKILL, when
    nothing at exit could run)."""
    from psycopg import sql

    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (BENCH_DB_PREFIX + "%",)
    ).fetchall()
    for (name,) in rows:
        pid = str(name)[len(BENCH_DB_PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: leave its database alone
    return True
