-- A run's id belongs to the agent that runs it: (owner, run_id) is the key, so one agent can
-- never claim, squat on or read another agent's run by guessing its id.

ALTER TABLE runs RENAME TO runs_before_owners;

CREATE TABLE runs (
    owner TEXT NOT NULL,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (owner, run_id)
);

INSERT INTO runs (owner, run_id, status, updated_at, body)
SELECT owner, run_id, status, updated_at, body FROM runs_before_owners;

DROP TABLE runs_before_owners;

CREATE INDEX runs_status ON runs (status, updated_at);
CREATE INDEX runs_run_id ON runs (run_id);
