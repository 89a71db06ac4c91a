-- Writes know the event before their own when they can (signoff_prev), so a process's
-- streams take its own events at once instead of reading them back; a create checks for a
-- live grant in its own transaction (p_unless_granted), not with a read before it.

DROP FUNCTION signoff_create(
    text, text, text, text, text, text, text, timestamptz, timestamptz, text,
    text[], text[], text[], text[], text[], text);
DROP FUNCTION signoff_transition(
    text, bigint, text, text, text, text[], text[], text[], text[], text[], text);

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

-- Creates a request with its audit event and its deliveries, or returns the one already
-- made with its idempotency key: one round trip, in autocommit. With p_unless_granted, a
-- live grant for the agent and the tool at that time writes nothing (created is null): the
-- caller looks at whether it covers the call. prev: see signoff_prev.
CREATE FUNCTION signoff_create(
    p_id text, p_status text, p_tool text, p_agent_id text, p_requested_by text, p_risk text,
    p_key text, p_created_at timestamptz, p_expires_at timestamptz, p_body text,
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text, p_unless_granted timestamptz
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
        positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
        PERFORM signoff_deliver(p_id, p_deliveries);
        PERFORM pg_notify('signoff_events', positions[cardinality(positions)] || ' ' || p_id);
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
    p_types text[], p_states text[], p_lives text[], p_ats text[], p_records text[],
    p_deliveries text
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
            positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
            PERFORM signoff_deliver(p_id, p_deliveries);
            PERFORM pg_notify('signoff_events', positions[cardinality(positions)] || ' ' || p_id);
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
        positions := signoff_append(p_id, p_types, p_states, p_lives, p_ats, p_records);
        prev := signoff_prev();
    END IF;
    RETURN NEXT;
END;
$$;

