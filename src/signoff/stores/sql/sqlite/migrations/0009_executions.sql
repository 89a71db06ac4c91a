-- Session-aware limits (issue 14, CONTRACT.md §9): the calls a policy over the agent's
-- history let run without asking, so the next call's limit sees them. Written only for
-- tools whose policy reads history. args is the call's arguments as JSON; at is Unix
-- seconds.

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    run_id TEXT,
    args TEXT NOT NULL,
    at REAL NOT NULL
);

-- what a limit reads: the agent's runs in a window
CREATE INDEX executions_agent ON executions (agent_id, at);
