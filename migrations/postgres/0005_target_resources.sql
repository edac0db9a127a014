-- Target resources sampled during a run (optional): one value per second of
-- a Prometheus query, e.g. the target's CPU in cores
-- (`rate(process_cpu_seconds_total[5s])`), so a run reports requests per
-- target CPU-second. The query and source are in the run's config_json.
CREATE TABLE run_target_samples (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    -- Unix second the sample was taken at (the query's evaluation time).
    second BIGINT NOT NULL,
    -- The query's value: CPU cores for a CPU rate query.
    value  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, second)
);
