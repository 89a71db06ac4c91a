-- The current schema, for reading. Migrations build it; a test checks that they agree.

-- No AUTOINCREMENT: it costs a write to sqlite_sequence on every insert. Rows are never
-- deleted from the top of a table, so a plain rowid still only ever increases.
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
    body TEXT NOT NULL
);

-- Few indexes on purpose: each one is written on every insert. Listing by status (the
-- queue) and by requester (an agent's own requests) are the hot queries; other filters
-- narrow those pages.
CREATE INDEX requests_pending_expiry ON requests (expires_at) WHERE status = 'pending';
CREATE INDEX requests_status ON requests (status, seq);
CREATE INDEX requests_requested_by ON requests (requested_by, seq);

-- Live events carry no copy of the request: a replay joins the request as it is now.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL
);

-- Each event is its canonical JSON record, hashed byte for byte with the previous hash.
-- request_id is copied out of the record for the index only.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    request_id TEXT,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX audit_request ON audit (request_id, seq);

-- The chain is append-only: the database itself refuses to change or remove an event.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
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
