-- Named queries for the PostgreSQL store. Each starts with a line "-- name: <name>".
-- Parameters are psycopg's: %(name)s.

-- name: migrations_table
CREATE TABLE IF NOT EXISTS signoff_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM signoff_migrations;

-- name: record_migration
INSERT INTO signoff_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: advisory_xact_lock
SELECT pg_advisory_xact_lock(%(key)s);

-- name: try_advisory_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: alive
SELECT 1;

-- name: insert_request
INSERT INTO requests
    (id, status, tool, agent_id, requested_by, risk, idempotency_key, created_at, expires_at, body)
VALUES
    (%(id)s, %(status)s, %(tool)s, %(agent_id)s, %(requested_by)s, %(risk)s,
     %(idempotency_key)s, %(created_at)s, %(expires_at)s, %(body)s);

-- name: get_request
SELECT body FROM requests WHERE id = %(id)s;

-- name: idempotent_twin_and_audit_head
-- Under the write lock: the request already created with this key (if any), and the head
-- of the audit chain to append to.
SELECT twin.body, head.seq, head.hash
FROM (SELECT 1) AS one
LEFT JOIN requests AS twin ON twin.idempotency_key = %(idempotency_key)s
LEFT JOIN LATERAL (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) AS head ON true;

-- name: request_for_update_and_audit_head
-- Under the write lock: the request, row-locked, and the head of the audit chain.
SELECT request.body, head.seq, head.hash
FROM (SELECT body FROM requests WHERE id = %(id)s FOR UPDATE) AS request
LEFT JOIN LATERAL (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) AS head ON true;

-- name: audit_head
SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1;

-- name: list_requests
-- Newest first. The store fills in the WHERE clause from ListQuery.filters.
SELECT seq, body FROM requests {where} ORDER BY seq DESC LIMIT %(limit)s;

-- name: update_request
UPDATE requests SET status = %(status)s, body = %(body)s WHERE id = %(id)s;

-- name: due_for_expiry
SELECT id FROM requests
WHERE status = 'pending' AND expires_at <= %(now)s
ORDER BY expires_at
LIMIT %(limit)s;

-- name: next_expiry
SELECT min(expires_at) FROM requests WHERE status = 'pending';

-- name: insert_event
INSERT INTO events (type, request_id, at) VALUES (%(type)s, %(request_id)s, %(at)s)
RETURNING id;

-- name: events_after
SELECT events.id, events.type, events.request_id, events.at, requests.body
FROM events JOIN requests ON requests.id = events.request_id
WHERE events.id > %(after)s ORDER BY events.id LIMIT %(limit)s;

-- name: last_event_id
SELECT coalesce(max(id), 0) FROM events;

-- name: insert_audit
INSERT INTO audit (seq, request_id, record, prev_hash, hash)
VALUES (%(seq)s, %(request_id)s, %(record)s, %(prev_hash)s, %(hash)s);

-- name: audit_all
SELECT record, prev_hash, hash FROM audit WHERE seq > %(after)s ORDER BY seq LIMIT %(limit)s;

-- name: audit_for_request
SELECT record, prev_hash, hash FROM audit
WHERE request_id = %(request_id)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s;

-- name: count_by_status
SELECT status, count(*) FROM requests GROUP BY status;

-- name: save_run
INSERT INTO runs (owner, run_id, status, updated_at, body)
VALUES (%(owner)s, %(run_id)s, %(status)s, %(updated_at)s, %(body)s)
ON CONFLICT (owner, run_id) DO UPDATE
SET status = excluded.status, updated_at = excluded.updated_at, body = excluded.body;

-- name: get_run
SELECT body FROM runs WHERE owner = %(owner)s AND run_id = %(run_id)s;

-- name: list_runs
SELECT body FROM runs
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(owner)s::text IS NULL OR owner = %(owner)s)
  AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
ORDER BY updated_at DESC LIMIT %(limit)s;

-- name: purge_spent
DELETE FROM spent_tokens WHERE until <= now();

-- name: spend
INSERT INTO spent_tokens (key, until) VALUES (%(key)s, %(until)s) ON CONFLICT (key) DO NOTHING;

-- name: is_spent
SELECT 1 FROM spent_tokens WHERE key = %(key)s AND until > now();
