"""The numbered migrations and schema.sql describe the same database, on each dialect."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg.sql import SQL as PgSQL

from signoff.errors import StoreError
from signoff.stores import sql
from signoff.stores.postgres import PostgresStore
from signoff.stores.postgres import migrate as pg_migrate
from signoff.stores.sqlite import SqliteStore, _statements, migrate
from tests.helpers.postgres import DATABASES


def _objects(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND name != 'signoff_migrations' ORDER BY type, name"
    ).fetchall()
    return [(t, n, " ".join((s or "").split())) for t, n, s in rows]


def test_migrations_rebuild_the_schema(tmp_path: Path) -> None:
    migrated = sqlite3.connect(tmp_path / "migrated.db", isolation_level=None)
    assert migrate(migrated) == len(sql.migrations("sqlite"))
    reference = sqlite3.connect(tmp_path / "reference.db", isolation_level=None)
    for statement in _statements(sql.schema("sqlite")):
        reference.execute(statement)
    assert _objects(migrated) == _objects(reference)
    assert _objects(migrated), "the schema is empty"


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    version = migrate(conn)
    assert migrate(conn) == version
    count = conn.execute("SELECT count(*) FROM signoff_migrations").fetchone()[0]
    assert count == version


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO signoff_migrations VALUES (999, 'future', 'now')")
    with pytest.raises(StoreError, match="newer than this signoff"):
        migrate(conn)


def test_statements_keep_trigger_bodies_whole() -> None:
    script = (
        "CREATE TABLE t (x);\n"
        "CREATE TRIGGER g BEFORE DELETE ON t\nBEGIN\n SELECT 1;\n SELECT 2;\nEND;\n"
    )
    assert len(_statements(script)) == 2


def test_every_query_names_real_tables(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(conn)
    for name, statement in sql.queries("sqlite").items():
        try:
            conn.execute("EXPLAIN " + statement, _null_params(statement))
        except sqlite3.Error as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"query {name} does not prepare: {exc}")


def _null_params(statement: str) -> dict[str, None]:
    return dict.fromkeys(re.findall(r":(\w+)", statement))


async def test_open_twice_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db" / "nested" / "s.db"
    store = SqliteStore(path)
    await store.start()
    await store.start()
    await store.aclose()
    await store.aclose()
    again = SqliteStore(path)
    await again.start()
    assert await again.last_event_id() == 0
    await again.aclose()


def test_bad_synchronous_level() -> None:
    from signoff.errors import ConfigError

    with pytest.raises(ConfigError):
        SqliteStore("x.db", synchronous="sometimes")


# -- PostgreSQL --------------------------------------------------------------------------

#: what a schema is made of, each as comparable rows (the migrations' own table left out)
_PG_CATALOG = {
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, is_nullable,
               column_default, is_identity, identity_generation
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name <> 'signoff_migrations'
        ORDER BY table_name, ordinal_position""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'signoff_migrations'
        ORDER BY indexname""",
    "constraints": """
        SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relname <> 'signoff_migrations'
        ORDER BY c.relname, k.conname""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
        ORDER BY c.relname, t.tgname""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace ORDER BY proname""",
}


def _pg_objects(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {kind: conn.execute(query).fetchall() for kind, query in _PG_CATALOG.items()}


async def test_postgres_migrations_rebuild_the_schema() -> None:
    migrated, reference = DATABASES.empty(), DATABASES.empty()
    try:
        async with await psycopg.AsyncConnection.connect(migrated, autocommit=True) as conn:
            assert await pg_migrate(conn) == len(sql.migrations("postgres"))
        with psycopg.connect(reference, autocommit=True) as conn:
            conn.execute(sql.schema("postgres"))
        built, expected = _pg_objects(migrated), _pg_objects(reference)
        assert built == expected
        assert all(built.values()), f"the schema lacks something: {built}"
    finally:
        DATABASES.drop(migrated)
        DATABASES.drop(reference)


async def test_postgres_replicas_starting_together_migrate_once() -> None:
    url = DATABASES.empty()
    stores = [PostgresStore.from_url(url, min_size=1) for _ in range(4)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM signoff_migrations ORDER BY 1").fetchall()
        assert versions == [(m.version,) for m in sql.migrations("postgres")]
        assert await stores[0].last_event_id() == 0
    finally:
        for store in stores:
            await store.aclose()
        DATABASES.drop(url)


async def test_a_newer_postgres_database_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO signoff_migrations (version, name) VALUES (999, 'future')")
    store = PostgresStore.from_url(postgres_url, min_size=1)
    with pytest.raises(StoreError, match="newer than this signoff"):
        await store.start()
    await store.aclose()


def test_every_postgres_query_prepares(postgres_url: str) -> None:
    """Each named query is valid against the migrated schema (EXPLAIN plans without running)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name, statement in sql.queries("postgres").items():
            code = "\n".join(ln for ln in statement.splitlines() if not ln.startswith("--"))
            if not code.lstrip().startswith(("SELECT", "INSERT", "UPDATE", "WITH")):
                continue  # LISTEN, CREATE TABLE: not plannable, run by every store start
            query = PgSQL(code).format(where=PgSQL(""))
            params = dict.fromkeys(re.findall(r"%\((\w+)\)s", code))
            try:
                conn.execute(PgSQL("EXPLAIN ") + query, params)
            except psycopg.Error as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"query {name} does not plan: {exc}")
