"""Fresh PostgreSQL databases for tests, one per test, fast.

The schema is migrated once per session into a template database; each test then gets
``CREATE DATABASE … TEMPLATE …`` (a file copy, no migration) and drops it afterwards. Names
carry the process id, so runs side by side on one server never meet; the databases of a run
that was killed (SIGKILL leaves them behind) are dropped by the next run, once their
process is gone.

``SIGNOFF_TEST_PG`` names the server's maintenance database (default: the local server that
``scripts/services`` starts).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from signoff.stores.postgres import PostgresStore

ADMIN_URL = os.environ.get("SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "signoff_test_"


def url_for(database: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


class TestDatabases:
    """Creates and drops the test databases of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None
        self._template: str | None = None
        self._live: set[str] = set()

    def _execute(self, statement: sql.Composed) -> None:
        if self._admin is None:
            self._admin = psycopg.connect(ADMIN_URL, autocommit=True)
            self._drop_orphans(self._admin)
        self._admin.execute(statement)

    @staticmethod
    def _drop_orphans(admin: psycopg.Connection[tuple[object, ...]]) -> None:
        """Drop the test databases of runs whose process no longer exists."""
        names = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in names:
            pid = str(name)[len(PREFIX) :].split("_", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(str(name))
                    )
                )

    def _new_name(self) -> str:
        return f"{PREFIX}{os.getpid()}_{next(self._counter)}"

    def empty(self) -> str:
        """The URL of a new database with no signoff schema in it."""
        with self._lock:
            name = self._new_name()
            self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            self._live.add(name)
        return url_for(name)

    def fresh(self) -> str:
        """The URL of a new database with the schema migrated, nothing else in it."""
        with self._lock:
            if self._template is None:
                self._template = self._make_template()
            name = self._new_name()
            self._execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self._template)
                )
            )
            self._live.add(name)
        return url_for(name)

    def _make_template(self) -> str:
        name = self._new_name() + "_template"
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._live.add(name)

        async def migrate() -> None:
            store = PostgresStore.from_url(url_for(name), min_size=1)
            await store.start()
            await store.aclose()

        # on a thread of its own: the caller may be inside a test's running event loop
        with ThreadPoolExecutor(1) as worker:
            worker.submit(asyncio.run, migrate()).result()
        return name

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self._lock:
            self._live.discard(name)
            self._execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def close(self) -> None:
        with self._lock:
            for name in sorted(self._live):
                self._execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            self._live.clear()
            self._template = None
            if self._admin is not None:
                self._admin.close()
                self._admin = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: leave its databases alone
    return True


DATABASES = TestDatabases()
