-- Second rollup level: 10-second blocks of an ended run, so the partial
-- minutes at a window's edges read whole 10-second blocks and at most 9
-- per-second rows per edge and endpoint from run_seconds (instead of up to
-- 59, whose DEFLATE histograms dominated windows with mid-minute edges).
-- A separate table beside run_minutes rather than one table with a span
-- column: this migration adds rows without rewriting the existing minutes,
-- and each level keeps its own primary key for its range reads. Written in
-- the transaction that finishes the run, from the same pass as the minutes
-- (seconds merged into blocks, blocks into minutes).
CREATE TABLE run_tens (
    run_id      TEXT NOT NULL,
    -- First Unix second of the block; blocks are aligned to the run's
    -- tens_origin (origin + 10k, so every minute is 6 whole blocks) and hold
    -- every run_seconds row of [block_start, block_start + 10).
    block_start BIGINT NOT NULL,
    endpoint    INTEGER NOT NULL,
    requests    BIGINT NOT NULL,
    failures    BIGINT NOT NULL,
    cancelled   BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    -- HdrHistogram V2 without DEFLATE, like run_minutes.
    histogram   BYTEA NOT NULL,
    uncorrected_histogram BYTEA,
    PRIMARY KEY (run_id, block_start, endpoint),
    FOREIGN KEY (run_id, endpoint) REFERENCES run_endpoints (run_id, idx) ON DELETE CASCADE
);

-- The Unix second the run's blocks are aligned to (the second it started
-- in, as minutes_origin); NULL while it runs and for runs that ended before
-- this migration, whose window edges are read from run_seconds until
-- `cicada runs rollup` builds their blocks.
ALTER TABLE runs ADD COLUMN tens_origin BIGINT;
