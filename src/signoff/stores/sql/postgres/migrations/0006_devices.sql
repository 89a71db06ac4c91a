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
