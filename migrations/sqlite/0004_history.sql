-- Run history: the latest passing run of a scenario (`--baseline
-- latest-passing`) and trends of finished runs filter by scenario and status
-- and read newest first.
CREATE INDEX runs_scenario_status_started_idx ON runs (scenario_name, status, started_at_ms DESC);
