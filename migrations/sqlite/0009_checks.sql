-- Response checks (`check:` in the scenario, docs/SCENARIO.md).
--
-- One row per check of a run, written with the run; the workers' deltas add
-- their pass/fail counts in the same transaction as the rest of the delta,
-- so the counts are exactly-once like everything else.
CREATE TABLE run_checks (
    run_id   TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    -- The endpoint (index) whose responses it checks.
    endpoint INTEGER NOT NULL,
    name     TEXT NOT NULL,
    passed   INTEGER NOT NULL DEFAULT 0,
    failed   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
);
