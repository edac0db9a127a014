-- Per-minute rollup of an ended run, so a window (`compare --from/--to`)
-- reads one merged row per minute and endpoint instead of 60 per-second rows
-- (whose histogram decoding dominated the query). Written in the transaction
-- that finishes the run, from the same per-second rows as run_summaries;
-- the partial minutes at a window's edges are still read from run_seconds.
CREATE TABLE run_minutes (
    run_id       TEXT NOT NULL,
    -- First Unix second of the minute; minutes are aligned to the run's
    -- minutes_origin (origin + 60k) and hold every run_seconds row of
    -- [minute_start, minute_start + 60).
    minute_start BIGINT NOT NULL,
    endpoint     INTEGER NOT NULL,
    requests     BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    cancelled    BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    -- HdrHistogram V2 without DEFLATE (about twice the bytes of the
    -- compressed rows of run_seconds, ~4x cheaper to decode).
    histogram    BYTEA NOT NULL,
    uncorrected_histogram BYTEA,
    PRIMARY KEY (run_id, minute_start, endpoint),
    FOREIGN KEY (run_id, endpoint) REFERENCES run_endpoints (run_id, idx) ON DELETE CASCADE
);

-- The Unix second the run's minutes are aligned to (the second it started
-- in); NULL while it runs and for runs that ended before this migration,
-- whose windows are read from run_seconds until `cicada runs rollup` builds
-- their minutes.
ALTER TABLE runs ADD COLUMN minutes_origin BIGINT;
