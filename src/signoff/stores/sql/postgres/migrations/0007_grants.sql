-- Standing grants (issue 14, CONTRACT.md §9): written in the transaction of the approval
-- that makes them. body is the grant as JSON (never rewritten); the columns beside it are
-- what lookups filter on, and the revocation. A submission covered by a grant takes the
-- grant's row FOR SHARE in the transaction that approves, so a revocation (an UPDATE of
-- that row) either commits first and is seen, or waits for the approval to commit.

CREATE TABLE grants (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    tool text NOT NULL,
    agent text NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    body text NOT NULL
);

-- what a submission looks for: the agent's grants for the tool
CREATE INDEX grants_cover ON grants (agent, tool);
