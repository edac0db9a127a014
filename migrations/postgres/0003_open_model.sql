-- The open model (arrival rate): latencies measured from the actual send
-- next to the coordinated-omission corrected ones in `histogram`, and the
-- iterations dropped because the in-flight bound was reached.

-- HdrHistogram V2 + DEFLATE of the uncorrected latencies in microseconds;
-- NULL in the closed model, where there is only one measurement.
ALTER TABLE run_seconds ADD COLUMN uncorrected_histogram BYTEA;
ALTER TABLE run_summaries ADD COLUMN uncorrected_histogram BYTEA;

-- Dropped iterations per second, summed across workers: one more counter
-- on the (run, second) row the active users already live on.
ALTER TABLE run_users ADD COLUMN dropped BIGINT NOT NULL DEFAULT 0;
