-- Durable agent runs: each run's transcript, checkpointed after every step.

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE INDEX runs_status ON runs (status, updated_at);
