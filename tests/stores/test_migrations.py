"""The numbered migrations and schema.sql describe the same database, on each dialect."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import psycopg
import pytest
from psycopg.sql import SQL as PgSQL

from signoff.audit import AuditEvent
from signoff.canonical import canonical_json
from signoff.errors import StoreError
from signoff.models import ApprovalRequest, Status
from signoff.service import ApprovalService
from signoff.stores import sql
from signoff.stores.base import Store
from signoff.stores.postgres import PostgresStore
from signoff.stores.postgres import migrate as pg_migrate
from signoff.stores.sqlite import SqliteStore
from signoff.stores.sqlite_files import _statements, migrate
from tests.conftest import ADMIN
from tests.helpers.postgres import DATABASES


def _objects(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND name != 'signoff_migrations' ORDER BY type, name"
    ).fetchall()
    # white space is not meaning: ALTER TABLE … ADD COLUMN writes ", col" after a line break
    return [(t, n, re.sub(r" ([,)])", r"\1", " ".join((s or "").split()))) for t, n, s in rows]


def test_migrations_rebuild_the_schema(tmp_path: Path) -> None:
    migrated = sqlite3.connect(tmp_path / "migrated.db", isolation_level=None)
    assert migrate(migrated) == sql.migrations("sqlite")[-1].version
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
    assert count == len(sql.migrations("sqlite"))


def test_a_migration_applied_out_of_order_is_applied_once(tmp_path: Path) -> None:
    """A database migrated by a branch whose number is lower than one applied here still
    gets every migration it lacks (the runner does not stop at the highest)."""
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    migrate(conn)
    [devices] = [m for m in sql.migrations("sqlite") if m.name == "devices"]
    conn.execute("DELETE FROM signoff_migrations WHERE version = ?", (devices.version,))
    conn.execute("DROP TABLE devices")
    assert migrate(conn) == sql.migrations("sqlite")[-1].version
    assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 0


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
        WHERE pronamespace = 'public'::regnamespace
        ORDER BY proname, pg_get_function_identity_arguments(oid)""",
}


def _pg_objects(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {kind: conn.execute(query).fetchall() for kind, query in _PG_CATALOG.items()}


async def test_postgres_migrations_rebuild_the_schema() -> None:
    migrated, reference = DATABASES.empty(), DATABASES.empty()
    try:
        async with await psycopg.AsyncConnection.connect(migrated, autocommit=True) as conn:
            assert await pg_migrate(conn) == sql.migrations("postgres")[-1].version
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
        assert await stores[0].events_after(0) == []
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
            params = dict.fromkeys(re.findall(r"%\((\w+)\)[sbt]", code))
            try:
                conn.execute(PgSQL("EXPLAIN ") + query, params)
            except psycopg.Error as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"query {name} does not plan: {exc}")


# -- upgrading a database that holds events of the old chain --------------------------------


def _legacy_events(request_id: str, digest_: str) -> list[tuple[int, str]]:
    """Events as the old chain stored them: its seq inside the canonical record."""
    actor = {"sub": "bot", "kind": "agent", "role": None}
    created = {"args_digest": digest_, "args": {"amount": 1.5, "note": "é\u2028"}}
    refused = {"attempted": "read", "error": "forbidden", "nested": {"seq": 9, "type": "x"}}
    bodies = [
        ("request.created", "agent", created),
        ("access.refused", None, refused),
    ]
    return [
        (
            n,
            canonical_json(
                {
                    "seq": n,
                    "type": type_,
                    "request_id": request_id,
                    "actor": actor,
                    "at": "2026-11-01T10:00:00.000000Z",
                    "via": via,
                    "data": data,
                }
            ),
        )
        for n, (type_, via, data) in enumerate(bodies, start=1)
    ]


def _legacy_request() -> ApprovalRequest:
    from tests.stores.test_contract import make_request

    return make_request(7)


async def _check_upgraded(store: Store) -> None:
    request = _legacy_request()
    async with ApprovalService(store, sweep=False) as service:
        events = await service.audit_events(ADMIN)
        assert [e.type for e in events] == ["request.created", "access.refused"]
        for event, (_, old) in zip(
            events, _legacy_events(request.id, request.args_digest), strict=True
        ):
            # the old seq is gone from the record, the rest is byte for byte as it was
            assert "seq" not in event.body
            assert event.body["data"] == json.loads(old)["data"]
            assert canonical_json(event.body) == event.record
        await store.settle()
        assert await service.audit_log.seal() == 2
        result = await service.verify_audit(ADMIN)
        assert result.ok and result.sealed == 2, result
        # an exported line verifies on its own: its record is rebuilt from its fields
        sealed = await service.audit_events(ADMIN)
        assert [AuditEvent.from_dict(e.to_dict()) for e in sealed] == sealed
        # and the upgraded request moves on, bound to its events like any other
        approved = await service.decide(request.id, ADMIN, "approve")
        assert approved.status is Status.APPROVED


async def test_sqlite_upgrade_reseals_the_old_chain(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE signoff_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for migration in sql.migrations("sqlite")[:4]:
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO signoff_migrations VALUES (?, ?, 'then')",
            (migration.version, migration.name),
        )
    request = _legacy_request()
    conn.execute(
        "INSERT INTO requests (id, status, tool, agent_id, requested_by, risk, created_at, "
        "expires_at, body) VALUES (?, 'pending', ?, ?, ?, 'medium', ?, ?, ?)",
        (
            request.id,
            request.tool,
            request.run.agent_id,
            request.requested_by,
            request.created_at.isoformat(),
            request.expires_at.timestamp() + 10**6,
            request.model_copy(
                update={"expires_at": request.expires_at.replace(year=2099)}
            ).model_dump_json(),
        ),
    )
    for seq, record in _legacy_events(request.id, request.args_digest):
        conn.execute(
            "INSERT INTO audit (seq, request_id, record, prev_hash, hash) VALUES (?, ?, ?, '', '')",
            (seq, request.id, record),
        )
    conn.close()
    await _check_upgraded(SqliteStore(path))


async def test_postgres_upgrade_reseals_the_old_chain() -> None:
    url = DATABASES.empty()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE signoff_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in sql.migrations("postgres")[:3]:
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO signoff_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            request = _legacy_request().model_copy(
                update={"expires_at": _legacy_request().expires_at.replace(year=2099)}
            )
            conn.execute(
                "INSERT INTO requests (id, status, tool, agent_id, requested_by, risk, "
                "created_at, expires_at, body) "
                "VALUES (%s, 'pending', %s, %s, %s, 'medium', %s, %s, %s)",
                (
                    request.id,
                    request.tool,
                    request.run.agent_id,
                    request.requested_by,
                    request.created_at,
                    request.expires_at,
                    request.model_dump_json(),
                ),
            )
            for seq, record in _legacy_events(request.id, request.args_digest):
                conn.execute(
                    "INSERT INTO audit (seq, request_id, record, prev_hash, hash) "
                    "VALUES (%s, %s, %s, '', '')",
                    (seq, request.id, record),
                )
        await _check_upgraded(PostgresStore.from_url(url, min_size=1))
    finally:
        DATABASES.drop(url)


def test_missing_migration_numbers_are_tolerated_and_applied_when_they_arrive() -> None:
    """Branches take numbers (sqlite and postgres each reached 0009 their own way): a version
    may be missing, and a database gets a late-arriving one applied without re-running the
    others."""
    known = (sql.Migration(1, "a", ""), sql.Migration(3, "c", ""), sql.Migration(8, "h", ""))
    assert [m.version for m in sql.pending(known, set())] == [1, 3, 8]
    assert [m.version for m in sql.pending(known, {1, 8})] == [3]
    with pytest.raises(StoreError, match="newer than this signoff"):
        sql.pending(known, {1, 2})
    assert [m.version for m in sql.migrations("sqlite")][-1] == 9
    assert [m.version for m in sql.migrations("postgres")][-1] == 11
