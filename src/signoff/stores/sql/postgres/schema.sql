-- The current schema, for reading. Migrations build it; a test checks that they agree.

-- seq is the listing order (newest first) and the cursor.
CREATE TABLE requests (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    status text NOT NULL,
    tool text NOT NULL,
    agent_id text NOT NULL,
    requested_by text NOT NULL,
    risk text NOT NULL,
    idempotency_key text UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- The request as JSON text, kept exactly as written. jsonb would re-write it: the float
    -- 1e20 comes back as the integer 100000000000000000000 (changing the digest the approval
    -- is bound to), and a "\u0000" in a string is refused.
    body text NOT NULL,
    -- counts the row's writes: each transition is a compare-and-set on it
    version bigint NOT NULL DEFAULT 1
);

-- Few indexes on purpose: each one is written on every insert. Listing by status (the
-- queue) and by requester (an agent's own requests) are the hot queries; other filters
-- narrow those pages.
CREATE INDEX requests_pending_expiry ON requests (expires_at) WHERE status = 'pending';
CREATE INDEX requests_status ON requests (status, seq);
CREATE INDEX requests_requested_by ON requests (requested_by, seq);

-- The audit log (signoff.audit). Events are appended at positions drawn from the writing
-- transaction's id, (txid << 8) + n, so no writer waits for another; readers take only
-- positions below the oldest transaction still running, so one that commits late is never
-- skipped. Each event is its canonical JSON record, stored and later hashed byte for byte;
-- request_id, type, state (what the event leaves its request in: signoff.evidence), live
-- (the live event type it streams as) and at are copied out of the record for the indexes
-- and the live streams, and audit verify checks they agree with it. A live event's id is
-- its position.
CREATE TABLE audit_events (
    position bigint PRIMARY KEY,
    request_id text,
    type text NOT NULL,
    state text,
    live text,
    at text NOT NULL,
    record text NOT NULL
);

CREATE INDEX audit_events_request ON audit_events (request_id, position);

-- The sealer links the events, in position order, into a hash chain
CREATE TABLE audit_chain (
    seq bigint PRIMARY KEY,
    position bigint NOT NULL UNIQUE,
    hash text NOT NULL
);

-- and signs the chain's size and head with the server's Ed25519 key after each sealing.
CREATE TABLE audit_checkpoints (
    size bigint PRIMARY KEY,
    head text NOT NULL,
    position bigint NOT NULL,
    at text NOT NULL,
    kid text NOT NULL,
    signature text NOT NULL
);

-- All three are append-only: the database itself refuses to change or remove a row.
CREATE FUNCTION signoff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION signoff_audit_append_only();

-- Durable agent runs: each run's transcript, checkpointed after every step.
-- A run's id belongs to the agent that runs it: (owner, run_id) is the key.
CREATE TABLE runs (
    run_id text NOT NULL,
    owner text NOT NULL,
    status text NOT NULL,
    updated_at timestamptz NOT NULL,
    body text NOT NULL,
    CONSTRAINT runs_pkey PRIMARY KEY (owner, run_id)
);

CREATE INDEX runs_status ON runs (status, updated_at);
CREATE INDEX runs_run_id ON runs (run_id);

-- Single-use tokens (sign-in links, stream tickets, signed-out sessions), each kept until
-- it could no longer be used anyway. In the database so that every replica sees them.

CREATE TABLE spent_tokens (
    key text PRIMARY KEY,
    until timestamptz NOT NULL
);

CREATE INDEX spent_tokens_until ON spent_tokens (until);

-- The outbox: each delivery is written in the transaction of the event it announces;
-- delivery workers lease, send and record them.

CREATE TABLE deliveries (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    request_id text NOT NULL,
    channel text NOT NULL,
    type text NOT NULL,
    step integer,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    delivered_at timestamptz,
    last_error text,
    receipt text
);

-- what a claim looks for: pending ones by due time, and an earlier one of the same pair
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_request ON deliveries (request_id, channel, seq);
CREATE INDEX deliveries_channel ON deliveries (channel, seq);

-- Appends one transaction's audit events for one request at (txid << 8) + 0, 1, 2 … .
-- p_audit is a JSON array with one [type, state, live, at, record] array per event, the
-- record as a JSON string, so that its text (which the sealer hashes) is kept byte for byte.
-- One text parameter rather than five arrays: the client sends it for a fraction of the
-- work of encoding the arrays.
CREATE FUNCTION signoff_append(p_request_id text, p_audit text)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    base bigint := pg_current_xact_id()::text::bigint << 8;
    events json := coalesce(p_audit, '[]')::json;
    n integer := json_array_length(events);
BEGIN
    IF n > 256 THEN
        RAISE EXCEPTION 'one write appends at most 256 audit events, not %', n;
    END IF;
    INSERT INTO audit_events (position, request_id, type, state, live, at, record)
    SELECT base + e.i - 1, p_request_id, e.value ->> 0, e.value ->> 1, e.value ->> 2,
           e.value ->> 3, e.value ->> 4
    FROM json_array_elements(events) WITH ORDINALITY AS e (value, i);
    RETURN ARRAY(SELECT base + i - 1 FROM generate_series(1, n) AS i);
END;
$$;

-- Inserts a write's deliveries (a JSON array of {id, channel, type, step, created_at}), in
-- their order, inside the write's own transaction.
CREATE FUNCTION signoff_deliver(p_request_id text, p_deliveries text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_deliveries IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO deliveries (id, request_id, channel, type, step, created_at, due_at)
    SELECT d.value ->> 'id', p_request_id, d.value ->> 'channel', d.value ->> 'type',
           (d.value ->> 'step')::integer, (d.value ->> 'created_at')::timestamptz,
           (d.value ->> 'created_at')::timestamptz
    FROM json_array_elements(p_deliveries::json) WITH ORDINALITY AS d (value, n)
    ORDER BY d.n;
END;
$$;

-- The newest live event before this transaction's own events, when it is known: every
-- transaction that could hold an earlier position (an older one) has ended, because this
-- one is the oldest still running. Null when an older one runs: the events are then placed
-- by reading them back in order below the horizon.
CREATE FUNCTION signoff_prev() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    own xid8 := pg_current_xact_id();
BEGIN
    IF pg_snapshot_xmin(pg_current_snapshot()) <> own THEN
        RETURN NULL;
    END IF;
    RETURN coalesce((SELECT max(a.position) FROM audit_events AS a
                     WHERE a.position < (own::text::bigint << 8) AND a.live IS NOT NULL), 0);
END;
$$;

-- Tells the processes that LISTEN on signoff_events that writes committed: one payload
-- ("position request_id") per write. Called after those writes, never inside them: every
-- transaction that notifies takes one lock per database at its commit and keeps it through
-- the commit's WAL flush (so that notifications queue in commit order), which would line up
-- every write of the cluster behind every other's flush. This one does not wait for the
-- WAL (a notification only says "look"), so it holds that lock only for a moment.
CREATE FUNCTION signoff_notify(p_payloads text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOREACH payload IN ARRAY p_payloads LOOP
        PERFORM pg_notify('signoff_events', payload);
    END LOOP;
END;
$$;

-- Creates a request with its audit event and its deliveries, or returns the one already
-- made with its idempotency key: one round trip, in autocommit. With p_unless_granted, a
-- live grant for the agent and the tool at that time writes nothing (created is null): the
-- caller looks at whether it covers the call. prev: see signoff_prev.
CREATE FUNCTION signoff_create(
    p_id text, p_status text, p_tool text, p_agent_id text, p_requested_by text, p_risk text,
    p_key text, p_created_at timestamptz, p_expires_at timestamptz, p_body text,
    p_audit text, p_deliveries text, p_unless_granted timestamptz
) RETURNS TABLE (created boolean, version bigint, body text, positions bigint[], prev bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_unless_granted IS NOT NULL AND EXISTS (
        SELECT 1 FROM grants AS g
        WHERE g.agent = p_requested_by AND g.tool = p_tool AND g.revoked_at IS NULL
          AND g.expires_at > p_unless_granted
    ) THEN
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO requests AS r
        (id, status, tool, agent_id, requested_by, risk, idempotency_key, created_at,
         expires_at, body)
    VALUES
        (p_id, p_status, p_tool, p_agent_id, p_requested_by, p_risk, p_key, p_created_at,
         p_expires_at, p_body)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF FOUND THEN
        created := true;
        version := 1;
        positions := signoff_append(p_id, p_audit);
        PERFORM signoff_deliver(p_id, p_deliveries);
        prev := signoff_prev();
        RETURN NEXT;
        RETURN;
    END IF;
    created := false;
    SELECT r.version, r.body INTO version, body FROM requests AS r WHERE r.idempotency_key = p_key;
    RETURN NEXT;
END;
$$;

-- A transition's compare-and-set: writes the new row, its audit events and its deliveries
-- only if the row is still at p_version and its audited events end in p_expects (the state
-- the change was computed from). A refusal (p_body null) appends its events at the same
-- version, and no deliveries.
-- outcome: 'ok' | 'stale' (version, body: the row as it is) | 'missing' |
-- 'mismatch' (body: the state the events end in). prev: see signoff_prev.
CREATE FUNCTION signoff_transition(
    p_id text, p_version bigint, p_status text, p_body text, p_expects text,
    p_audit text, p_deliveries text
) RETURNS TABLE (outcome text, version bigint, body text, positions bigint[], prev bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    IF p_body IS NOT NULL THEN
        UPDATE requests AS r SET status = p_status, body = p_body, version = r.version + 1
        WHERE r.id = p_id AND r.version = p_version
          AND coalesce((SELECT a.state FROM audit_events AS a
                        WHERE a.request_id = p_id AND a.state IS NOT NULL
                        ORDER BY a.position DESC LIMIT 1), '') = p_expects
        RETURNING r.version INTO v_version;
        IF FOUND THEN
            outcome := 'ok';
            version := v_version;
            positions := signoff_append(p_id, p_audit);
            PERFORM signoff_deliver(p_id, p_deliveries);
            prev := signoff_prev();
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    SELECT r.version, r.body INTO v_version, body FROM requests AS r WHERE r.id = p_id;
    IF NOT FOUND THEN
        outcome := 'missing';
    ELSIF v_version <> p_version THEN
        outcome := 'stale';
        version := v_version;
    ELSIF p_body IS NOT NULL THEN
        outcome := 'mismatch';
        version := v_version;
        SELECT a.state INTO body FROM audit_events AS a
        WHERE a.request_id = p_id AND a.state IS NOT NULL ORDER BY a.position DESC LIMIT 1;
    ELSE
        outcome := 'ok';
        version := v_version;
        body := NULL;
        positions := signoff_append(p_id, p_audit);
        prev := signoff_prev();
    END IF;
    RETURN NEXT;
END;
$$;

-- The previous release's signatures, which took the audit events as five parallel arrays:
-- kept, as wrappers, for its replicas still running during a rolling upgrade.
CREATE FUNCTION signoff_audit_json(
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[]
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(json_agg(json_build_array(p_types[i], p_states[i], p_lives[i], p_ats[i],
                                              p_records[i]) ORDER BY i), '[]')::text
    FROM generate_series(1, coalesce(cardinality(p_records), 0)) AS i
$$;

CREATE FUNCTION signoff_append(
    p_request_id text, p_types text[], p_states text[], p_lives text[], p_ats text[],
    p_records text[]
) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT signoff_append(p_request_id,
                          signoff_audit_json(p_types, p_states, p_lives, p_ats, p_records))
$$;

CREATE FUNCTION signoff_create(
    p_id text, p_status text, p_tool text, p_agent_id text, p_requested_by text, p_risk text,
    p_key text, p_created_at timestamptz, p_expires_at timestamptz, p_body text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text, p_unless_granted timestamptz
) RETURNS TABLE (created boolean, version bigint, body text, positions bigint[], prev bigint)
LANGUAGE sql AS $$
    SELECT * FROM signoff_create(
        p_id, p_status, p_tool, p_agent_id, p_requested_by, p_risk, p_key, p_created_at,
        p_expires_at, p_body, signoff_audit_json(p_types, p_states, p_lives, p_ats, p_records),
        p_deliveries, p_unless_granted)
$$;

CREATE FUNCTION signoff_transition(
    p_id text, p_version bigint, p_status text, p_body text, p_expects text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text
) RETURNS TABLE (outcome text, version bigint, body text, positions bigint[], prev bigint)
LANGUAGE sql AS $$
    SELECT * FROM signoff_transition(
        p_id, p_version, p_status, p_body, p_expects,
        signoff_audit_json(p_types, p_states, p_lives, p_ats, p_records), p_deliveries)
$$;

-- The sealer's write: links and a checkpoint, only if the chain's head is still the one
-- the links were computed after (a sealer that lost the race writes nothing).
CREATE FUNCTION signoff_seal(
    p_head_seq bigint, p_head_hash text, p_seqs bigint[], p_positions bigint[],
    p_hashes text[], p_size bigint, p_head text, p_position bigint, p_at text, p_kid text,
    p_signature text
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_hash text;
BEGIN
    -- one sealer at a time (0x7369676E6F666604, "signof" + 4), whoever leads: the others
    -- find the lock taken and try later
    IF NOT pg_try_advisory_xact_lock(8316291910929376772) THEN
        RETURN false;
    END IF;
    SELECT c.seq, c.hash INTO v_seq, v_hash FROM audit_chain AS c ORDER BY c.seq DESC LIMIT 1;
    IF v_seq IS DISTINCT FROM p_head_seq OR v_hash IS DISTINCT FROM p_head_hash THEN
        RETURN false;
    END IF;
    INSERT INTO audit_chain (seq, position, hash)
    SELECT * FROM unnest(p_seqs, p_positions, p_hashes);
    INSERT INTO audit_checkpoints (size, head, position, at, kid, signature)
    VALUES (p_size, p_head, p_position, p_at, p_kid, p_signature);
    RETURN true;
END;
$$;

-- Devices signed in with `signoff login` (the OAuth device authorization grant, RFC 8628).
-- One row per authorization: pending (a user code waits for a person), approved, active
-- (its token was issued), denied, revoked or burned. The device code and the user code are
-- kept only as hashes; refresh tokens are not kept at all (they are MACs over the row's id
-- and refresh_gen, which counts the rotations).

CREATE TABLE devices (
    id text PRIMARY KEY,
    device_code_hash text NOT NULL UNIQUE,
    user_code_hash text NOT NULL,
    name text NOT NULL,
    address text NOT NULL,
    status text NOT NULL,
    sub text,
    role text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    interval_s integer NOT NULL,
    last_poll_at timestamptz,
    failures integer NOT NULL DEFAULT 0,
    refresh_gen integer NOT NULL DEFAULT 0,
    decided_at timestamptz,
    used_at timestamptz
);

CREATE INDEX devices_user_code ON devices (user_code_hash) WHERE status = 'pending';
CREATE INDEX devices_sub ON devices (sub, created_at);
-- Standing grants: written in the transaction of the approval that makes them; body is
-- the grant as JSON, the columns beside it what lookups filter on. A covered submission
-- takes the row FOR SHARE, so a revocation commits first or waits for it.
CREATE TABLE grants (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    tool text NOT NULL,
    agent text NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    body text NOT NULL
);

-- what a submission looks for: the agent's grants for the tool
CREATE INDEX grants_cover ON grants (agent, tool);

-- The calls a policy over the agent's history let run without asking (signoff.history),
-- only for tools whose policy reads history. args is JSON.
CREATE TABLE executions (
    id text PRIMARY KEY,
    tool text NOT NULL,
    agent_id text NOT NULL,
    run_id text,
    args text NOT NULL,
    at timestamptz NOT NULL
);

-- what a limit reads: the agent's runs in a window
CREATE INDEX executions_agent ON executions (agent_id, at);
