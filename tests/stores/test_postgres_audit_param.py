"""On PostgreSQL a write's audit events travel as one JSON text (``audit_json``): every
column, and each record's exact text (which the sealer hashes), arrives as it left. The
previous release's signatures (five parallel arrays) still write the same rows, for its
replicas during a rolling upgrade."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.audit import AuditEntry
from signoff.models import Status
from signoff.stores import sql
from signoff.stores.base import audit_json
from signoff.stores.postgres import PostgresStore
from tests.helpers.strategies import json_values
from tests.stores.test_contract import make_request

_Q = sql.queries("postgres")
_STORED = "SELECT type, state, live, at, record FROM audit_events WHERE position = ANY(%s) "
_STORED += "ORDER BY position"
#: the previous release's call: the audit events as five parallel arrays
_OLD_TRANSITION = (
    "SELECT * FROM signoff_transition(%s, 1, 'approved', %s, %s, %s, %s, %s, %s, %s, NULL)"
)


def columns(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.type, entry.state, entry.live, entry.at_text, entry.record())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.dictionaries(st.text(), json_values, max_size=4), digest=st.text())
def test_every_column_and_each_records_text_arrive_as_they_left(
    postgres_url: str, data: dict[str, Any], digest: str
) -> None:
    at = datetime.now(UTC)
    entries = [
        AuditEntry("request.approved", "apr_x", {"sub": "ada"}, at, "slack", data),
        AuditEntry("access.refused", None, {"sub": "\\\"'\x00é🙂"}, at, None, {"d": digest}),
    ]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(_Q["append"], {"request_id": "apr_x", "audit": audit_json(entries)})
        [positions] = row.fetchone() or [None]
        stored = conn.execute(_STORED, (positions,)).fetchall()
    assert stored == [columns(e) for e in entries]


async def test_the_previous_releases_array_signatures_write_the_same_rows(
    postgres_url: str,
) -> None:
    request = make_request(1)
    created = AuditEntry("request.created", request.id, {"sub": "support"}, request.created_at,
                         None, {"args_digest": request.args_digest})  # fmt: skip
    store = PostgresStore.from_url(postgres_url, min_size=1)
    await store.start()
    try:
        await store.create(request, created)
    finally:
        await store.aclose()
    approved = request.model_copy(update={"status": Status.APPROVED})
    entry = AuditEntry("request.approved", request.id, {"sub": "ada"}, datetime.now(UTC), None,
                       {"args_digest": request.args_digest})  # fmt: skip
    arrays = [[entry.type], [entry.state], [entry.live], [entry.at_text], [entry.record()]]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        outcome, version, _, positions, _ = (
            conn.execute(
                _OLD_TRANSITION,
                [request.id, approved.model_dump_json(), created.state, *arrays],
            ).fetchone()
            or [None] * 5
        )
        assert (outcome, version) == ("ok", 2)
        assert conn.execute(_STORED, (positions,)).fetchall() == [columns(entry)]
        refused = AuditEntry("access.refused", request.id, {"sub": "eve"}, datetime.now(UTC))
        [appended] = conn.execute(
            "SELECT signoff_append(%s, %s, %s, %s, %s, %s)",
            [request.id, *([value] for value in columns(refused))],
        ).fetchone() or [None]
        assert conn.execute(_STORED, (appended,)).fetchall() == [columns(refused)]
        status, stored_version = conn.execute(
            "SELECT status, version FROM requests WHERE id = %s", [request.id]
        ).fetchone() or [None, None]
    assert (status, stored_version) == ("approved", 2)
