-- Pass/fail thresholds of a run: announced with the run (observed and passed
-- NULL), their final results written once the run has ended.
CREATE TABLE run_thresholds (
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- Position in the run's threshold list (scenario's first, then flags').
    idx           INTEGER NOT NULL,
    -- 'METHOD NAME' of one endpoint; NULL for all endpoints together.
    endpoint      TEXT,
    -- Canonical expression, e.g. 'p95 < 150ms'.
    expression    TEXT NOT NULL,
    abort_on_fail BOOLEAN NOT NULL,
    delay_ms      BIGINT NOT NULL,
    -- In the metric's unit (ms, fraction, per second, count); NULL when
    -- nothing was measured or the run has not ended.
    observed      DOUBLE PRECISION,
    -- NULL until the run has ended.
    passed        BOOLEAN,
    PRIMARY KEY (run_id, idx)
);
