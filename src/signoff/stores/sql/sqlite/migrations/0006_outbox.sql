-- The outbox (issue 11): each delivery is written in the transaction of the event it
-- announces; delivery workers lease, send and record them. seq orders the deliveries of
-- one request to one channel; times are Unix seconds.

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
