-- The outbox (issue 11): each delivery is written in the transaction of the event it
-- announces; delivery workers lease, send and record them (a claim is one UPDATE … WHERE
-- seq IN (SELECT … FOR UPDATE SKIP LOCKED)). seq orders the deliveries of one request: its
-- writes are serialized by the request row's lock, so they draw seq values in commit order.
-- signoff_create and signoff_transition take the deliveries as a JSON array, so a write
-- stays one round trip.

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

DROP FUNCTION signoff_create(
    text, text, text, text, text, text, text, timestamptz, timestamptz, text,
    text[], text[], text[], text[], text[]);
DROP FUNCTION signoff_transition(
    text, bigint, text, text, text, text[], text[], text[], text[], text[]);

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

-- Creates a request with its audit event and its deliveries, or returns the one already
-- made with its idempotency key: one round trip, in autocommit.
CREATE FUNCTION signoff_create(
    p_id text, p_status text, p_tool text, p_agent_id text, p_requested_by text, p_risk text,
    p_key text, p_created_at timestamptz, p_expires_at timestamptz, p_body text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text
) RETURNS TABLE (created boolean, version bigint, body text, positions bigint[])
LANGUAGE plpgsql AS $$
BEGIN
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
        positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
        PERFORM signoff_deliver(p_id, p_deliveries);
        PERFORM pg_notify('signoff_events', positions[cardinality(positions)] || ' ' || p_id);
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
-- 'mismatch' (body: the state the events end in).
CREATE FUNCTION signoff_transition(
    p_id text, p_version bigint, p_status text, p_body text, p_expects text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text
) RETURNS TABLE (outcome text, version bigint, body text, positions bigint[])
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
            positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
            PERFORM signoff_deliver(p_id, p_deliveries);
            PERFORM pg_notify('signoff_events', positions[cardinality(positions)] || ' ' || p_id);
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
        positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
    END IF;
    RETURN NEXT;
END;
$$;
