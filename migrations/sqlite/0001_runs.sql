-- Runs and everything measured during them. Rows are bounded by
-- run x second x endpoint (plus one watermark row per worker), never by
-- worker x second: worker deltas are merged on write.

CREATE TABLE runs (
    -- UUIDv7 string: time ordered, created by the controller.
    id            TEXT PRIMARY KEY,
    scenario_name TEXT NOT NULL,
    scenario_yaml TEXT NOT NULL,
    host          TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    labels_json   TEXT NOT NULL,
    -- 'running', 'finished' or 'failed'.
    status        TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms   INTEGER,
    error         TEXT
);

-- Run history: newest first, optionally by scenario (trends) or status.
CREATE INDEX runs_started_idx ON runs (started_at_ms DESC, id DESC);
CREATE INDEX runs_scenario_started_idx ON runs (scenario_name, started_at_ms DESC);
CREATE INDEX runs_status_started_idx ON runs (status, started_at_ms DESC);

-- Labels again as rows, so "runs with label k=v" is an index lookup.
CREATE TABLE run_labels (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_labels_key_value_idx ON run_labels (key, value, run_id);

-- The scenario's endpoint table; deltas refer to endpoints by index.
CREATE TABLE run_endpoints (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    method TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- One row per (run, second, endpoint), merged across workers.
-- The primary key serves the per-second series, the live window and the
-- per-endpoint merge at finish (all scan by run_id, then second).
CREATE TABLE run_seconds (
    run_id    TEXT NOT NULL,
    second    INTEGER NOT NULL,
    endpoint  INTEGER NOT NULL,
    requests  INTEGER NOT NULL,
    failures  INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    -- HdrHistogram V2 + DEFLATE of latencies in microseconds.
    histogram BLOB NOT NULL,
    PRIMARY KEY (run_id, second, endpoint),
    FOREIGN KEY (run_id, endpoint) REFERENCES run_endpoints (run_id, idx) ON DELETE CASCADE
);

-- Users running at the end of each second, summed across workers.
CREATE TABLE run_users (
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    second       INTEGER NOT NULL,
    active_users INTEGER NOT NULL,
    PRIMARY KEY (run_id, second)
);

-- Failures by kind over the whole run.
CREATE TABLE run_failures (
    run_id       TEXT NOT NULL,
    endpoint     INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    count        INTEGER NOT NULL,
    last_message TEXT NOT NULL,
    PRIMARY KEY (run_id, endpoint, kind),
    FOREIGN KEY (run_id, endpoint) REFERENCES run_endpoints (run_id, idx) ON DELETE CASCADE
);

-- Per-endpoint totals written when the run finishes: what history,
-- comparisons and trends read without touching run_seconds.
CREATE TABLE run_summaries (
    run_id    TEXT NOT NULL,
    endpoint  INTEGER NOT NULL,
    requests  INTEGER NOT NULL,
    failures  INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    PRIMARY KEY (run_id, endpoint),
    FOREIGN KEY (run_id, endpoint) REFERENCES run_endpoints (run_id, idx) ON DELETE CASCADE
);

-- Highest delta sequence applied per (run, worker): exactly-once ingestion.
CREATE TABLE run_watermarks (
    run_id    TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    worker_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (run_id, worker_id)
);
