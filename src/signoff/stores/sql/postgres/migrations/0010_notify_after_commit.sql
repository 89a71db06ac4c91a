-- Writes no longer NOTIFY inside their own transaction: PostgreSQL serializes the commits
-- of every transaction that notifies (one lock per database, held through the WAL flush),
-- so every write of the cluster waited for every other's. The writer notifies after its
-- commit instead, with signoff_notify, in a transaction that does not wait for the WAL.

-- Tells the processes that LISTEN on signoff_events that writes committed: one payload
-- ("position request_id") per write. Called after those writes, never inside them: every
-- transaction that notifies takes one lock per database at its commit and keeps it through
-- the commit's WAL flush (so that notifications queue in commit order), which would line up
-- every write of the cluster behind every other's flush. This one does not wait for the
-- WAL (a notification only says "look"), so it holds that lock only for a moment.
CREATE FUNCTION signoff_notify(p_payloads text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    FOREACH payload IN ARRAY p_payloads LOOP
        PERFORM pg_notify('signoff_events', payload);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION signoff_create(
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
        prev := signoff_prev();
        RETURN NEXT;
        RETURN;
    END IF;
    created := false;
    SELECT r.version, r.body INTO version, body FROM requests AS r WHERE r.idempotency_key = p_key;
    RETURN NEXT;
END;
$$;

CREATE OR REPLACE FUNCTION signoff_transition(
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
