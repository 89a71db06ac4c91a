-- A write's audit events travel as one JSON text (p_audit) instead of five parallel
-- arrays: encoding five arrays cost the client more than the rest of the statement's
-- parameters together. New signatures of signoff_append, signoff_create and
-- signoff_transition take it; the old ones become wrappers of the new, so that replicas of
-- the previous release keep writing while a rolling upgrade replaces them.

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

CREATE OR REPLACE FUNCTION signoff_append(
    p_request_id text, p_types text[], p_states text[], p_lives text[], p_ats text[],
    p_records text[]
) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT signoff_append(p_request_id,
                          signoff_audit_json(p_types, p_states, p_lives, p_ats, p_records))
$$;

CREATE OR REPLACE FUNCTION signoff_create(
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

CREATE OR REPLACE FUNCTION signoff_transition(
    p_id text, p_version bigint, p_status text, p_body text, p_expects text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text
) RETURNS TABLE (outcome text, version bigint, body text, positions bigint[], prev bigint)
LANGUAGE sql AS $$
    SELECT * FROM signoff_transition(
        p_id, p_version, p_status, p_body, p_expects,
        signoff_audit_json(p_types, p_states, p_lives, p_ats, p_records), p_deliveries)
$$;
