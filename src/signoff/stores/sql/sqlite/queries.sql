-- Named queries for the SQLite store. Each starts with a line "-- name: <name>".

-- name: insert_request
INSERT INTO requests
    (id, status, tool, agent_id, requested_by, risk, idempotency_key, created_at, expires_at, body)
VALUES
    (:id, :status, :tool, :agent_id, :requested_by, :risk, :idempotency_key, :created_at,
     :expires_at, :body);

-- name: get_request
SELECT version, body FROM requests WHERE id = :id;

-- name: get_request_by_key
SELECT version, body FROM requests WHERE idempotency_key = :idempotency_key;

-- name: update_request
-- The compare-and-set of a transition: only the version the change was computed from, and
-- only if the request's audited events end in the state it was computed from.
UPDATE requests SET status = :status, body = :body, version = version + 1
WHERE id = :id AND version = :version
  AND coalesce((SELECT state FROM audit_events
                WHERE request_id = :id AND state IS NOT NULL
                ORDER BY position DESC LIMIT 1), '') = :expects;

-- name: logged_state
SELECT state FROM audit_events
WHERE request_id = :id AND state IS NOT NULL ORDER BY position DESC LIMIT 1;

-- name: due_for_expiry
SELECT id FROM requests
WHERE status = 'pending' AND expires_at <= :now
ORDER BY expires_at
LIMIT :limit;

-- name: next_expiry
SELECT min(expires_at) FROM requests WHERE status = 'pending';

-- name: insert_audit
INSERT INTO audit_events (request_id, type, state, live, at, record)
VALUES (:request_id, :type, :state, :live, :at, :record);

-- name: last_position
SELECT coalesce(max(position), 0) FROM audit_events;

-- name: events_after
SELECT a.position, a.live, a.request_id, a.at, r.version, r.body
FROM audit_events AS a JOIN requests AS r ON r.id = a.request_id
WHERE a.position > :after AND a.live IS NOT NULL
ORDER BY a.position LIMIT :limit;

-- name: audit_all
SELECT a.position, a.record, c.seq, c.hash, p.hash
FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
LEFT JOIN audit_chain AS p ON p.seq = c.seq - 1
WHERE a.position > :after ORDER BY a.position LIMIT :limit;

-- name: audit_for_request
SELECT a.position, a.record, c.seq, c.hash, p.hash
FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
LEFT JOIN audit_chain AS p ON p.seq = c.seq - 1
WHERE a.request_id = :request_id AND a.position > :after ORDER BY a.position LIMIT :limit;

-- name: chain_head
SELECT seq, position, hash FROM audit_chain ORDER BY seq DESC LIMIT 1;

-- name: unsealed
SELECT position, record, state FROM audit_events
WHERE position > :after ORDER BY position LIMIT :limit;

-- name: insert_link
INSERT INTO audit_chain (seq, position, hash) VALUES (:seq, :position, :hash);

-- name: insert_checkpoint
INSERT INTO audit_checkpoints (size, head, position, at, kid, signature)
VALUES (:size, :head, :position, :at, :kid, :signature);

-- name: sealed
SELECT c.seq, c.position, c.hash, a.record, a.state
FROM audit_chain AS c LEFT JOIN audit_events AS a ON a.position = c.position
WHERE c.seq > :after ORDER BY c.seq LIMIT :limit;

-- name: checkpoints
SELECT size, head, position, at, kid, signature FROM audit_checkpoints
WHERE size > :after ORDER BY size LIMIT :limit;

-- name: unsealed_below
SELECT a.position FROM audit_events AS a
LEFT JOIN audit_chain AS c ON c.position = a.position
WHERE a.position <= :position AND c.seq IS NULL
ORDER BY a.position LIMIT :limit;

-- name: requests_page
SELECT seq, body FROM requests WHERE seq > :after ORDER BY seq LIMIT :limit;

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

-- name: insert_delivery
INSERT INTO deliveries (id, request_id, channel, type, step, created_at, due_at)
VALUES (:id, :request_id, :channel, :type, :step, :created_at, :created_at);

-- name: claim_deliveries
-- Due, unleased (or the lease ran out), and first in line for its request and channel.
UPDATE deliveries SET lease_owner = :owner, lease_until = :lease_until, attempts = attempts + 1
WHERE seq IN (
    SELECT d.seq FROM deliveries AS d
    WHERE d.status = 'pending' AND d.due_at <= :now
      AND (d.lease_until IS NULL OR d.lease_until <= :now)
      AND d.channel NOT IN (SELECT value FROM json_each(:skip))
      AND (:only IS NULL OR d.channel = :only)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS e
          WHERE e.request_id = d.request_id AND e.channel = d.channel
            AND e.status = 'pending' AND e.seq < d.seq)
    ORDER BY d.due_at, d.seq LIMIT :limit)
RETURNING id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until;

-- name: finish_delivery
UPDATE deliveries
SET status = 'delivered', delivered_at = :now, receipt = :receipt, last_error = NULL,
    lease_owner = NULL, lease_until = NULL
WHERE id = :id AND lease_owner = :owner AND status = 'pending';

-- name: fail_delivery
UPDATE deliveries
SET status = CASE WHEN :retry_at IS NULL THEN 'failed' ELSE 'pending' END,
    due_at = coalesce(:retry_at, due_at), last_error = :error,
    lease_owner = NULL, lease_until = NULL
WHERE id = :id AND lease_owner = :owner AND status = 'pending';

-- name: receipts
SELECT receipt FROM deliveries
WHERE request_id = :request_id AND channel = :channel AND seq < :before
  AND receipt IS NOT NULL
ORDER BY seq;

-- name: get_delivery
SELECT id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until
FROM deliveries WHERE id = :id;

-- name: retry_delivery
UPDATE deliveries
SET status = 'pending', due_at = :now, attempts = 0, lease_owner = NULL, lease_until = NULL
WHERE id = :id AND (status = 'failed'
    OR (status = 'pending' AND (lease_until IS NULL OR lease_until <= :now)))
RETURNING id, seq, request_id, channel, type, step, status, attempts, created_at, due_at,
    delivered_at, last_error, receipt, lease_until;

-- name: delivery_counts
SELECT channel, status, count(*) FROM deliveries GROUP BY channel, status;

-- name: next_delivery_due
SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > due_at THEN lease_until
                ELSE due_at END)
FROM deliveries WHERE status = 'pending';
-- Devices (`signoff login`). Every change is a compare-and-set on the status; each
-- returns the row as it left it (the columns of device_get, in that order).

-- name: device_purge
DELETE FROM devices WHERE expires_at < :before;

-- name: device_code_taken
SELECT 1 FROM devices
WHERE device_code_hash = :device_code_hash
   OR (user_code_hash = :user_code_hash AND status = 'pending' AND expires_at > :now);

-- name: device_insert
INSERT INTO devices
    (id, device_code_hash, user_code_hash, name, address, status, sub, role, created_at,
     expires_at, interval_s, last_poll_at, failures, refresh_gen, decided_at, used_at)
VALUES
    (:id, :device_code_hash, :user_code_hash, :name, :address, :status, :sub, :role,
     :created_at, :expires_at, :interval_s, :last_poll_at, :failures, :refresh_gen,
     :decided_at, :used_at);

-- name: device_get
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices WHERE id = :id;

-- name: device_by_user_code
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices
WHERE user_code_hash = :user_code_hash AND status = 'pending' AND expires_at > :now;

-- name: device_by_code
SELECT id, interval_s, last_poll_at FROM devices WHERE device_code_hash = :device_code_hash;

-- name: device_polled
UPDATE devices SET last_poll_at = :now, interval_s = :interval_s WHERE id = :id
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_decide
UPDATE devices SET status = :status, sub = :sub, role = :role, decided_at = :now
WHERE id = :id AND status = 'pending' AND expires_at > :now
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_activate
UPDATE devices SET status = 'active', refresh_gen = 1, expires_at = :expires_at, used_at = :now
WHERE id = :id AND status = 'approved' AND expires_at > :now
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_rotate
UPDATE devices SET refresh_gen = refresh_gen + 1, used_at = :now
WHERE id = :id AND status = 'active' AND refresh_gen = :gen AND expires_at > :now
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_revoke
UPDATE devices SET status = 'revoked'
WHERE id = :id AND status IN ('pending', 'approved', 'active')
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_count_failure
UPDATE devices SET failures = failures + 1,
    status = CASE WHEN failures + 1 >= :limit THEN 'burned' ELSE status END
WHERE status = 'pending' AND expires_at > :now
RETURNING id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at;

-- name: device_list
SELECT id, name, address, status, sub, role, created_at, expires_at, interval_s,
    last_poll_at, failures, refresh_gen, decided_at, used_at
FROM devices
WHERE status IN ('active', 'revoked') AND (:sub IS NULL OR sub = :sub)
ORDER BY created_at DESC LIMIT :limit;

-- name: insert_grant
INSERT INTO grants (id, tool, agent, expires_at, body)
VALUES (:id, :tool, :agent, :expires_at, :body);

-- name: grant_live
SELECT 1 FROM grants WHERE id = :id AND revoked_at IS NULL AND expires_at > :now;

-- name: any_live_grant
-- whether a submission must look at grants at all (checked in the create's transaction)
SELECT 1 FROM grants
WHERE agent = :agent AND tool = :tool AND revoked_at IS NULL AND expires_at > :now LIMIT 1;

-- name: get_grant
SELECT body, revoked_at, revoked_by FROM grants WHERE id = :id;

-- name: revoke_grant
UPDATE grants SET revoked_at = :now, revoked_by = :by WHERE id = :id AND revoked_at IS NULL;

-- name: list_grants
SELECT body, revoked_at, revoked_by FROM grants
WHERE (:agent IS NULL OR agent = :agent) AND (:tool IS NULL OR tool = :tool)
  AND (:active IS NULL OR (revoked_at IS NULL AND expires_at > :now) = :active)
ORDER BY seq DESC
LIMIT :limit;

-- name: insert_execution
INSERT INTO executions (id, tool, agent_id, run_id, args, at)
VALUES (:id, :tool, :agent_id, :run_id, :args, :at);

-- name: executions_since
SELECT tool, run_id, args, at, id FROM executions WHERE agent_id = :agent AND at >= :since;

-- name: delete_execution
-- a reservation withdrawn: the call asked (or was denied) rather than ran
DELETE FROM executions WHERE id = :id AND agent_id = :agent RETURNING id;

-- name: ledger_since
-- every agent's unasked runs from a time on, oldest first (a policy replay reads them)
SELECT id, tool, agent_id, run_id, args, at FROM executions WHERE at >= :since ORDER BY at, id;

-- name: counted_requests
-- an agent's requests that count toward its limits (signoff.history): pending ones of any
-- age, approved ones since the window's start
SELECT version, body, id FROM requests
WHERE requested_by = :agent
  AND (status = 'pending' OR (status = 'approved' AND created_at >= :since));
