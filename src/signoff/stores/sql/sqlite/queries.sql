-- Named queries for the SQLite store. Each starts with a line "-- name: <name>".

-- name: insert_request
INSERT INTO requests
    (id, status, tool, agent_id, requested_by, risk, idempotency_key, created_at, expires_at, body)
VALUES
    (:id, :status, :tool, :agent_id, :requested_by, :risk, :idempotency_key, :created_at,
     :expires_at, :body);

-- name: get_request
SELECT body FROM requests WHERE id = :id;

-- name: get_request_by_key
SELECT body FROM requests WHERE idempotency_key = :idempotency_key;

-- name: update_request
UPDATE requests SET status = :status, body = :body WHERE id = :id;

-- name: due_for_expiry
SELECT id FROM requests
WHERE status = 'pending' AND expires_at <= :now
ORDER BY expires_at
LIMIT :limit;

-- name: next_expiry
SELECT min(expires_at) FROM requests WHERE status = 'pending';

-- name: insert_event
INSERT INTO events (type, request_id, at) VALUES (:type, :request_id, :at);

-- name: events_after
SELECT events.id, events.type, events.request_id, events.at, requests.body
FROM events JOIN requests ON requests.id = events.request_id
WHERE events.id > :after ORDER BY events.id LIMIT :limit;

-- name: last_event_id
SELECT coalesce(max(id), 0) FROM events;

-- name: audit_head
SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1;

-- name: insert_audit
INSERT INTO audit (seq, request_id, record, prev_hash, hash)
VALUES (:seq, :request_id, :record, :prev_hash, :hash);

-- name: audit_all
SELECT record, prev_hash, hash FROM audit WHERE seq > :after ORDER BY seq LIMIT :limit;

-- name: audit_for_request
SELECT record, prev_hash, hash FROM audit
WHERE request_id = :request_id AND seq > :after ORDER BY seq LIMIT :limit;

-- name: count_by_status
SELECT status, count(*) FROM requests GROUP BY status;

-- name: save_run
INSERT INTO runs (owner, run_id, status, updated_at, body)
VALUES (:owner, :run_id, :status, :updated_at, :body)
ON CONFLICT (owner, run_id) DO UPDATE
SET status = excluded.status, updated_at = excluded.updated_at, body = excluded.body;

-- name: get_run
SELECT body FROM runs WHERE owner = :owner AND run_id = :run_id;

-- name: list_runs
SELECT body FROM runs
WHERE (:status IS NULL OR status = :status)
  AND (:owner IS NULL OR owner = :owner)
  AND (:run_id IS NULL OR run_id = :run_id)
ORDER BY updated_at DESC LIMIT :limit;

-- name: purge_spent
DELETE FROM spent_tokens WHERE until <= :now;

-- name: spend
INSERT INTO spent_tokens (key, until) VALUES (:key, :until) ON CONFLICT (key) DO NOTHING;

-- name: is_spent
SELECT 1 FROM spent_tokens WHERE key = :key AND until > :now;
