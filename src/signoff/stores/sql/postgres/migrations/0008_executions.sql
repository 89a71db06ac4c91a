-- Session-aware limits (issue 14, CONTRACT.md §9): the calls a policy over the agent's
-- history let run without asking, so the next call's limit sees them. Written only for
-- tools whose policy reads history. args is the call's arguments as JSON.

CREATE TABLE executions (
    id text PRIMARY KEY,
    tool text NOT NULL,
    agent_id text NOT NULL,
    run_id text,
    args text NOT NULL,
    at timestamptz NOT NULL
);

-- what a limit reads: the agent's runs in a window
CREATE INDEX executions_agent ON executions (agent_id, at);
