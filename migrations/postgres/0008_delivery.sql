-- Fault accounting (docs/RELIABILITY.md).
--
-- Each delta source's watermark row also carries, updated in the same
-- transaction as the merge: the requests received from it, the end of its
-- last applied interval (the worker's clock), the highest request rate one
-- of its intervals showed, and the requests it reported as evicted from its
-- full buffer. From these the collector bounds what a worker that died
-- without its final flush took with it.
ALTER TABLE run_watermarks ADD COLUMN requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE run_watermarks ADD COLUMN cut_at_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE run_watermarks ADD COLUMN peak_rps DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE run_watermarks ADD COLUMN evicted_requests BIGINT NOT NULL DEFAULT 0;

-- Workers that left a run without their final flush, written when the run
-- finishes.
CREATE TABLE run_lost_workers (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    worker_id      TEXT NOT NULL,
    delta_source   TEXT NOT NULL,
    -- Seconds from the run's start to the loss.
    at_s           DOUBLE PRECISION NOT NULL,
    -- Requests of its deltas that were received.
    received       BIGINT NOT NULL,
    -- Upper bound of its requests missing from the run.
    unrecorded_max BIGINT NOT NULL,
    PRIMARY KEY (run_id, worker_id, delta_source)
);
