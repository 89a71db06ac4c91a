-- A run's id belongs to the agent that runs it: (owner, run_id) is the key, so one agent can
-- never claim, squat on or read another agent's run by guessing its id.

ALTER TABLE runs DROP CONSTRAINT runs_pkey;
ALTER TABLE runs ADD CONSTRAINT runs_pkey PRIMARY KEY (owner, run_id);
CREATE INDEX runs_run_id ON runs (run_id);
