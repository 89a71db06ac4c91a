-- Named queries for the PostgreSQL store. Each starts with a line "-- name: <name>".
-- Parameters are psycopg's: %(name)s.

-- name: migrations_table
CREATE TABLE IF NOT EXISTS signoff_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_versions
SELECT version FROM signoff_migrations;

-- name: applied_versions
SELECT version FROM signoff_migrations;

-- name: record_migration
INSERT INTO signoff_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: advisory_xact_lock
SELECT pg_advisory_xact_lock(%(key)s);

-- name: try_advisory_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: alive
SELECT 1;

-- name: create
SELECT created, version, body, positions, prev FROM signoff_create(
    %(id)s, %(status)s, %(tool)s, %(agent_id)s, %(requested_by)s, %(risk)s,
    %(idempotency_key)s, %(created_at)s, %(expires_at)s, %(body)s, %(audit)s,
    %(deliveries)s, %(unless_granted)s);

-- name: transition
SELECT outcome, version, body, positions, prev FROM signoff_transition(
    %(id)s, %(version)s, %(status)s, %(body)s, %(expects)s, %(audit)s, %(deliveries)s);

-- name: append
SELECT signoff_append(%(request_id)s, %(audit)s);

-- name: seal
SELECT signoff_seal(
    %(head_seq)s, %(head_hash)s, %(seqs)s, %(positions)s, %(hashes)s,
    %(size)s, %(head)s, %(position)s, %(at)s, %(kid)s, %(signature)s);

-- name: get_request
SELECT version, body FROM requests WHERE id = %(id)s;

-- name: list_requests
-- Newest first. The store fills in the WHERE clause from ListQuery.filters.
SELECT seq, id, version, body FROM requests {where} ORDER BY seq DESC LIMIT %(limit)s;

-- name: due_for_expiry
SELECT id FROM requests
WHERE status = 'pending' AND expires_at <= %(now)s
ORDER BY expires_at
LIMIT %(limit)s;

-- name: next_expiry
SELECT min(expires_at) FROM requests WHERE status = 'pending';

-- name: horizon
-- Every position below this one has committed or never will: the oldest transaction still
-- running draws positions from its id and up.
SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 8);

-- name: events_after
-- The live events after a position, in order, with the horizon they were read below: every
-- position under it has committed or never will (one row with null events when none).
WITH h AS (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 8) AS horizon)
SELECT h.horizon, e.position, e.live, e.request_id, e.at, e.version, e.body
FROM h LEFT JOIN LATERAL (
    SELECT a.position, a.live, a.request_id, a.at, r.version, r.body
    FROM audit_events AS a JOIN requests AS r ON r.id = a.request_id
    WHERE a.position > %(after)s AND a.position < h.horizon AND a.live IS NOT NULL
    ORDER BY a.position LIMIT %(limit)s
) AS e ON true
ORDER BY e.position;

-- name: audit_all
SELECT a.position, a.record, c.seq, c.hash, p.hash
FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
LEFT JOIN audit_chain AS p ON p.seq = c.seq - 1
WHERE a.position > %(after)s AND a.position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 8)
ORDER BY a.position LIMIT %(limit)s;

-- name: audit_for_request
SELECT a.position, a.record, c.seq, c.hash, p.hash
FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
LEFT JOIN audit_chain AS p ON p.seq = c.seq - 1
WHERE a.request_id = %(request_id)s AND a.position > %(after)s
  AND a.position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 8)
ORDER BY a.position LIMIT %(limit)s;

-- name: chain_head
SELECT seq, position, hash FROM audit_chain ORDER BY seq DESC LIMIT 1;

-- name: unsealed
SELECT position, record, state FROM audit_events
WHERE position > %(after)s AND position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 8)
ORDER BY position LIMIT %(limit)s;

-- name: sealed
SELECT c.seq, c.position, c.hash, a.record, a.state
FROM audit_chain AS c LEFT JOIN audit_events AS a ON a.position = c.position
WHERE c.seq > %(after)s ORDER BY c.seq LIMIT %(limit)s;

-- name: checkpoints
SELECT size, head, position, at, kid, signature FROM audit_checkpoints
WHERE size > %(after)s ORDER BY size LIMIT %(limit)s;

-- name: unsealed_below
SELECT a.position FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
WHERE a.position <= %(position)s AND c.seq IS NULL
ORDER BY a.position LIMIT %(limit)s;

-- name: requests_page
SELECT seq, body FROM requests WHERE seq > %(after)s ORDER BY seq LIMIT %(limit)s;

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

-- name: claim_deliveries
-- Due, unleased (or the lease ran out), and first in line for its request and channel; rows
-- another replica is claiming right now are skipped, not waited for.
UPDATE deliveries AS d
SET lease_owner = %(owner)s, lease_until = %(lease_until)s, attempts = d.attempts + 1
WHERE d.seq IN (
    SELECT c.seq FROM deliveries AS c
    WHERE c.status = 'pending' AND c.due_at <= %(now)s
      AND (c.lease_until IS NULL OR c.lease_until <= %(now)s)
      AND NOT (c.channel = ANY(%(skip)s::text[]))
      AND (%(only)s::text IS NULL OR c.channel = %(only)s::text)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS e
          WHERE e.request_id = c.request_id AND e.channel = c.channel
            AND e.status = 'pending' AND e.seq < c.seq)
    ORDER BY c.due_at, c.seq LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.seq, d.request_id, d.channel, d.type, d.step, d.status, d.attempts,
    d.created_at, d.due_at, d.delivered_at, d.last_error, d.receipt, d.lease_until;

-- name: finish_delivery
UPDATE deliveries
SET status = 'delivered', delivered_at = %(now)s, receipt = %(receipt)s, last_error = NULL,
    lease_owner = NULL, lease_until = NULL
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'pending';

-- name: fail_delivery
UPDATE deliveries
SET status = CASE WHEN %(retry_at)s::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
    due_at = coalesce(%(retry_at)s::timestamptz, due_at), last_error = %(error)s,
    lease_owner = NULL, lease_until = NULL
WHERE id = %(id)s AND lease_owner = %(owner)s AND status = 'pending';

-- name: receipts
SELECT receipt FROM deliveries
WHERE request_id = %(request_id)s AND channel = %(channel)s AND seq < %(before)s
  AND receipt IS NOT NULL
ORDER BY seq;

-- name: get_delivery
SELECT id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until
FROM deliveries WHERE id = %(id)s;

-- name: list_deliveries
-- Newest first. The store fills in the WHERE clause from DeliveryQuery.filters.
SELECT id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until
FROM deliveries {where} ORDER BY seq DESC LIMIT %(limit)s;

-- name: retry_delivery
UPDATE deliveries
SET status = 'pending', due_at = %(now)s, attempts = 0, lease_owner = NULL, lease_until = NULL
WHERE id = %(id)s AND (status = 'failed'
    OR (status = 'pending' AND (lease_until IS NULL OR lease_until <= %(now)s)))
RETURNING id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until;

-- name: delivery_counts
SELECT channel, status, count(*) FROM deliveries GROUP BY channel, status;

-- name: next_delivery_due
SELECT min(greatest(due_at, lease_until)) FROM deliveries WHERE status = 'pending';
-- Devices (`signoff login`). Every change is one statement: a compare-and-set on the
-- status that returns the row as it left it (the columns of device_get, in that order).

-- name: device_purge
DELETE FROM devices WHERE expires_at < %(before)s::timestamptz;

-- name: device_insert
-- Nothing is inserted when a pending, unexpired device has the same user code.
INSERT INTO devices
    (id, device_code_hash, user_code_hash, name, address, status, sub, role, created_at,
     expires_at, interval_s, last_poll_at, failures, refresh_gen, decided_at, used_at)
SELECT %(id)s::text, %(device_code_hash)s::text, %(user_code_hash)s::text, %(name)s::text,
       %(address)s::text, %(status)s::text, %(sub)s::text, %(role)s::text,
       %(created_at)s::timestamptz, %(expires_at)s::timestamptz, %(interval_s)s::integer,
       %(last_poll_at)s::timestamptz, %(failures)s::integer, %(refresh_gen)s::integer,
       %(decided_at)s::timestamptz, %(used_at)s::timestamptz
WHERE NOT EXISTS (
    SELECT 1 FROM devices
    WHERE user_code_hash = %(user_code_hash)s::text AND status = 'pending'
      AND expires_at > %(created_at)s::timestamptz)
ON CONFLICT (device_code_hash) DO NOTHING
RETURNING id;

-- name: device_get
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices WHERE id = %(id)s::text;

-- name: device_by_user_code
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices
WHERE user_code_hash = %(user_code_hash)s::text AND status = 'pending'
  AND expires_at > %(now)s::timestamptz;

-- name: device_poll
-- The row is locked by the inner SELECT, so two polls at once are counted one after the
-- other; too_fast compares the interval before (o) and after (d) this poll.
UPDATE devices AS d SET
    last_poll_at = %(now)s::timestamptz,
    interval_s = CASE
        WHEN o.last_poll_at IS NOT NULL
         AND %(now)s::timestamptz < o.last_poll_at + make_interval(secs => o.interval_s)
        THEN o.interval_s + %(slow_down)s::integer
        ELSE o.interval_s END
FROM (SELECT id, last_poll_at, interval_s FROM devices
      WHERE device_code_hash = %(device_code_hash)s::text FOR UPDATE) AS o
WHERE d.id = o.id
RETURNING d.id, d.name, d.address, d.status, d.sub, d.role, d.created_at, d.expires_at, d.interval_s, d.last_poll_at, d.failures, d.refresh_gen, d.decided_at, d.used_at,
    d.interval_s <> o.interval_s;

-- name: device_decide
UPDATE devices SET status = %(status)s::text, sub = %(sub)s::text, role = %(role)s::text,
    decided_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = 'pending' AND expires_at > %(now)s::timestamptz
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_activate
UPDATE devices SET status = 'active', refresh_gen = 1,
    expires_at = %(expires_at)s::timestamptz, used_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = 'approved' AND expires_at > %(now)s::timestamptz
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_rotate
UPDATE devices SET refresh_gen = refresh_gen + 1, used_at = %(now)s::timestamptz
WHERE id = %(id)s::text AND status = 'active' AND refresh_gen = %(gen)s::integer
  AND expires_at > %(now)s::timestamptz
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_revoke
UPDATE devices SET status = 'revoked'
WHERE id = %(id)s::text AND status IN ('pending', 'approved', 'active')
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_count_failure
UPDATE devices SET failures = failures + 1,
    status = CASE WHEN failures + 1 >= %(limit)s::integer THEN 'burned' ELSE status END
WHERE status = 'pending' AND expires_at > %(now)s::timestamptz
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_list
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices
WHERE status IN ('active', 'revoked') AND (%(sub)s::text IS NULL OR sub = %(sub)s::text)
ORDER BY created_at DESC LIMIT %(limit)s::integer;

-- name: insert_grant
INSERT INTO grants (id, tool, agent, expires_at, body)
VALUES (%(id)s, %(tool)s, %(agent)s, %(expires_at)s, %(body)s);

-- name: grant_live
-- FOR SHARE: a revocation of this grant waits until the approval it makes commits
SELECT 1 FROM grants
WHERE id = %(id)s AND revoked_at IS NULL AND expires_at > %(now)s
FOR SHARE;

-- name: get_grant
SELECT body, revoked_at, revoked_by FROM grants WHERE id = %(id)s;

-- name: revoke_grant
UPDATE grants SET revoked_at = %(now)s, revoked_by = %(by)s
WHERE id = %(id)s AND revoked_at IS NULL;

-- name: list_grants
SELECT body, revoked_at, revoked_by FROM grants
WHERE (%(agent)s::text IS NULL OR agent = %(agent)s::text)
  AND (%(tool)s::text IS NULL OR tool = %(tool)s::text)
  AND (%(active)s::boolean IS NULL
       OR (revoked_at IS NULL AND expires_at > %(now)s) = %(active)s::boolean)
ORDER BY seq DESC
LIMIT %(limit)s;

-- name: insert_execution
INSERT INTO executions (id, tool, agent_id, run_id, args, at)
VALUES (%(id)s, %(tool)s, %(agent_id)s, %(run_id)s, %(args)s, %(at)s);

-- name: executions_since
SELECT tool, run_id, args, at, id FROM executions WHERE agent_id = %(agent)s AND at >= %(since)s;

-- name: delete_execution
-- a reservation withdrawn: the call asked (or was denied) rather than ran
DELETE FROM executions WHERE id = %(id)s AND agent_id = %(agent)s RETURNING id;

-- name: ledger_since
-- every agent's unasked runs from a time on, oldest first (a policy replay reads them)
SELECT id, tool, agent_id, run_id, args, at FROM executions WHERE at >= %(since)s ORDER BY at, id;

-- name: counted_requests
-- an agent's requests that count toward its limits (signoff.history): pending ones of any
-- age, approved ones since the window's start
SELECT version, body, id FROM requests
WHERE requested_by = %(agent)s
  AND (status = 'pending' OR (status = 'approved' AND created_at >= %(since)s));
