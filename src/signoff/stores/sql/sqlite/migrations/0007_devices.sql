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
