-- The sealed audit log (issue 10). Events are appended without a predecessor's hash; the
-- sealer links them into audit_chain and signs checkpoints; a request's row carries a
-- version for compare-and-set, and each event that changes a request names the state it
-- leaves it in (signoff.evidence). Live events are the audit events that change a request:
-- the events table goes, and a live event's id is its audit position.

ALTER TABLE requests ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE audit_events (
    position INTEGER PRIMARY KEY,
    request_id TEXT,
    type TEXT NOT NULL,
    state TEXT,
    live TEXT,
    at TEXT NOT NULL,
    record TEXT NOT NULL
);

-- The events already audited move over at their positions, without the old chain's "seq"
-- inside the record (json_remove keeps the rest of the canonical text as it was); the
-- sealer seals them again, first.
INSERT INTO audit_events (position, request_id, type, state, live, at, record)
SELECT
    seq,
    request_id,
    json_extract(record, '$.type'),
    CASE json_extract(record, '$.type')
        WHEN 'request.created' THEN 'pending ' || json_extract(record, '$.data.args_digest') || ' 0'
        WHEN 'decision.recorded' THEN 'pending ' || json_extract(record, '$.data.args_digest')
            || ' ' || json_extract(record, '$.data.approvals')
        WHEN 'request.approved' THEN 'approved ' || json_extract(record, '$.data.args_digest')
        WHEN 'request.consumed' THEN 'consumed ' || json_extract(record, '$.data.args_digest')
        WHEN 'request.outcome' THEN 'done ' || json_extract(record, '$.data.status')
        WHEN 'request.rejected' THEN 'rejected'
        WHEN 'request.expired' THEN 'expired'
        WHEN 'request.cancelled' THEN 'cancelled'
    END,
    CASE json_extract(record, '$.type')
        WHEN 'request.created' THEN 'request.created'
        WHEN 'decision.recorded' THEN 'request.decided'
        WHEN 'request.approved' THEN 'request.decided'
        WHEN 'request.rejected' THEN 'request.decided'
        WHEN 'request.expired' THEN 'request.expired'
        WHEN 'request.cancelled' THEN 'request.cancelled'
        WHEN 'request.consumed' THEN 'request.consumed'
        WHEN 'request.outcome' THEN 'request.outcome'
    END,
    json_extract(record, '$.at'),
    json_remove(record, '$.seq')
FROM audit ORDER BY seq;

CREATE INDEX audit_events_request ON audit_events (request_id, position);

CREATE TABLE audit_chain (
    seq INTEGER PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    hash TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    position INTEGER NOT NULL,
    at TEXT NOT NULL,
    kid TEXT NOT NULL,
    signature TEXT NOT NULL
);

DROP TABLE audit;
DROP TABLE events;

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
