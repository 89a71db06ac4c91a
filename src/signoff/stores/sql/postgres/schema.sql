-- The current schema, for reading. Migrations build it; a test checks that they agree.

-- seq is the listing order (newest first) and the cursor; the store's write lock makes it
-- increase in commit order.
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
    body text NOT NULL
);

-- Few indexes on purpose: each one is written on every insert. Listing by status (the
-- queue) and by requester (an agent's own requests) are the hot queries; other filters
-- narrow those pages.
CREATE INDEX requests_pending_expiry ON requests (expires_at) WHERE status = 'pending';
CREATE INDEX requests_status ON requests (status, seq);
CREATE INDEX requests_requested_by ON requests (requested_by, seq);

-- Live events carry no copy of the request: a replay joins the request as it is now.
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL,
    request_id text NOT NULL,
    at timestamptz NOT NULL
);

-- Every event wakes the other replicas: NOTIFY in the writing transaction is delivered when
-- it commits, in commit order. Only the id is sent (payloads must stay under 8000 bytes);
-- a listener reads the events from this table.
CREATE FUNCTION signoff_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('signoff_events', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION signoff_notify_event();

-- Each event is its canonical JSON record, hashed byte for byte with the previous hash.
-- request_id is copied out of the record for the index only.
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    request_id text,
    record text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL
);

CREATE INDEX audit_request ON audit (request_id, seq);

-- The chain is append-only: the database itself refuses to change or remove an event.
CREATE FUNCTION signoff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();

CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
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
