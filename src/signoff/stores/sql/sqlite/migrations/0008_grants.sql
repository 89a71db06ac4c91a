-- Standing grants (issue 14, CONTRACT.md §9): written in the transaction of the approval
-- that makes them. body is the grant as JSON (never rewritten); the columns beside it are
-- what lookups filter on, and the revocation. Times are Unix seconds.

CREATE TABLE grants (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    tool TEXT NOT NULL,
    agent TEXT NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL,
    revoked_by TEXT,
    body TEXT NOT NULL
);

-- what a submission looks for: the agent's grants for the tool
CREATE INDEX grants_cover ON grants (agent, tool);
