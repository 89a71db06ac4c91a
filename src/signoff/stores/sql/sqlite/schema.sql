-- The current schema, for reading. Migrations build it; a test checks that they agree.

-- No AUTOINCREMENT: it costs a write to sqlite_sequence on every insert. Rows are never
-- deleted from the top of a table, so a plain rowid still only ever increases. version
-- counts the row's writes: each transition is a compare-and-set on it.
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    tool TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    risk TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    expires_at REAL NOT NULL,
    body TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);

-- Few indexes on purpose: each one is written on every insert. Listing by status (the
-- queue) and by requester (an agent's own requests) are the hot queries; other filters
-- narrow those pages.
CREATE INDEX requests_pending_expiry ON requests (expires_at) WHERE status = 'pending';
CREATE INDEX requests_status ON requests (status, seq);
CREATE INDEX requests_requested_by ON requests (requested_by, seq);

-- The audit log (signoff.audit). Events are appended as they happen, in position order;
-- each is its canonical JSON record, stored and later hashed byte for byte. request_id,
-- type, state (what the event leaves its request in: signoff.evidence), live (the live
-- event type it streams as) and at are copied out of the record for the indexes and the
-- live streams; audit verify checks they agree with it. A live event's id is its position.
CREATE TABLE audit_events (
    position INTEGER PRIMARY KEY,
    request_id TEXT,
    type TEXT NOT NULL,
    state TEXT,
    live TEXT,
    at TEXT NOT NULL,
    record TEXT NOT NULL
);

CREATE INDEX audit_events_request ON audit_events (request_id, position);

-- The sealer links the events, in position order, into a hash chain
CREATE TABLE audit_chain (
    seq INTEGER PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    hash TEXT NOT NULL
);

-- and signs the chain's size and head with the server's Ed25519 key after each sealing.
CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    position INTEGER NOT NULL,
    at TEXT NOT NULL,
    kid TEXT NOT NULL,
    signature TEXT NOT NULL
);

-- All three are append-only: the database itself refuses to change or remove a row.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Durable agent runs: each run's transcript, checkpointed after every step.

-- A run's id belongs to the agent that runs it: (owner, run_id) is the key.
CREATE TABLE runs (
    owner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (owner, run_id)
);

CREATE INDEX runs_status ON runs (status, updated_at);
CREATE INDEX runs_run_id ON runs (run_id);

-- Single-use tokens (sign-in links, stream tickets, signed-out sessions), each kept until
-- it could no longer be used anyway. In the database so that every replica sees them.

CREATE TABLE spent_tokens (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
);

CREATE INDEX spent_tokens_until ON spent_tokens (until);

-- The outbox: each delivery is written in the transaction of the event it announces;
-- delivery workers lease, send and record them. seq orders the deliveries of one request
-- to one channel; times are Unix seconds.

CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    type TEXT NOT NULL,
    step INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    delivered_at REAL,
    last_error TEXT,
    receipt TEXT
);

-- what a claim looks for: pending ones by due time, and an earlier one of the same pair
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_request ON deliveries (request_id, channel, seq);
CREATE INDEX deliveries_channel ON deliveries (channel, seq);
-- Devices signed in with `signoff login` (the OAuth device authorization grant, RFC 8628).
-- One row per authorization: pending (a user code waits for a person), approved, active
-- (its token was issued), denied, revoked or burned. The device code and the user code are
-- kept only as hashes; refresh tokens are not kept at all (they are MACs over the row's id
-- and refresh_gen, which counts the rotations). Times are Unix seconds.

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL,
    sub TEXT,
    role TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    interval_s INTEGER NOT NULL,
    last_poll_at REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    refresh_gen INTEGER NOT NULL DEFAULT 0,
    decided_at REAL,
    used_at REAL
);

CREATE INDEX devices_user_code ON devices (user_code_hash) WHERE status = 'pending';
CREATE INDEX devices_sub ON devices (sub, created_at);

-- Standing grants: written in the transaction of the approval that makes them; body is
-- the grant as JSON, the columns beside it what lookups filter on. Times are Unix seconds.
CREATE TABLE grants (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    tool TEXT NOT NULL,
    agent TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    revoked_by TEXT,
    body TEXT NOT NULL
);

-- what a submission looks for: the agent's grants for the tool
CREATE INDEX grants_cover ON grants (agent, tool);

-- The calls a policy over the agent's history let run without asking (signoff.history),
-- only for tools whose policy reads history. args is JSON; at is Unix seconds.
CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    run_id TEXT,
    args TEXT NOT NULL,
    at REAL NOT NULL
);

-- what a limit reads: the agent's runs in a window
CREATE INDEX executions_agent ON executions (agent_id, at);
