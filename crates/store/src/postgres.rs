//! The Postgres implementation of [`Store`].
//!
//! Concurrency: applying a delta takes `FOR SHARE` on the run row (finishing
//! takes `FOR UPDATE`, so a finish waits for in-flight deltas and later ones
//! see the final status), `FOR UPDATE` on the (run, worker) watermark, and
//! `FOR UPDATE` on every merged (run, second, endpoint) row, locked in
//! endpoint order so two collectors merging into the same second cannot lose
//! an update or deadlock.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::convert::{self, RUN_COLUMNS, RunRow, to_db};
use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::{
    ActiveUsers, ApplyOutcome, Delta, Endpoint, EndpointDelta, EndpointTotals, FailureRecord,
    LostWorkerRecord, NewRun, RollupSpan, RunFilter, RunFinish, RunRecord, RunStatus, SecondRow,
    Store, StoreError, TargetSample, ThresholdOutcome, ThresholdRecord, Watermark,
};

/// Runs and measurements in Postgres.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects a pool to `url` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, applying the migrations first.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

crate::reads::shared_reads!(PgStore);
crate::history::shared_history!(PgStore, sqlx::Postgres);
crate::rollup::shared_rollup!(PgStore, sqlx::Postgres);
crate::target::target_samples!(PgStore);
crate::delivery::shared_delivery!(PgStore, sqlx::Postgres, " FOR UPDATE", " FOR SHARE");
crate::checks::shared_checks!(PgStore, sqlx::Postgres);

#[async_trait]
impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        convert::check_endpoints(run)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, scenario_name, scenario_yaml, host, config_json, labels_json, status, started_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.id)
        .bind(&run.scenario_name)
        .bind(&run.scenario_yaml)
        .bind(&run.host)
        .bind(&run.config_json)
        .bind(convert::labels_to_json(&run.labels))
        .bind(RunStatus::Running.as_str())
        .bind(run.started_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::AlreadyExists(run.id.clone())
            } else {
                error.into()
            }
        })?;
        for (key, value) in &run.labels {
            sqlx::query("INSERT INTO run_labels (run_id, key, value) VALUES ($1, $2, $3)")
                .bind(&run.id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        for endpoint in &run.endpoints {
            sqlx::query(
                "INSERT INTO run_endpoints (run_id, idx, method, name) VALUES ($1, $2, $3, $4)",
            )
            .bind(&run.id)
            .bind(endpoint.index as i32)
            .bind(&endpoint.method)
            .bind(&endpoint.name)
            .execute(&mut *tx)
            .await?;
        }
        for (index, threshold) in run.thresholds.iter().enumerate() {
            sqlx::query(
                "INSERT INTO run_thresholds (run_id, idx, endpoint, expression, abort_on_fail, delay_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&run.id)
            .bind(index as i32)
            .bind(threshold.endpoint.as_deref())
            .bind(&threshold.expression)
            .bind(threshold.abort_on_fail)
            .bind(to_db(threshold.delay_ms))
            .execute(&mut *tx)
            .await?;
        }
        Self::write_check_defs(&mut tx, run).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.read_run(run_id).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE ($1::text IS NULL OR scenario_name = $1)
               AND ($2::text IS NULL OR status = $2)
               AND ($3::bigint IS NULL OR started_at_ms >= $3)
               AND ($4::bigint IS NULL OR started_at_ms < $4)
               AND ($5::text IS NULL OR EXISTS (
                    SELECT 1 FROM run_labels l WHERE l.run_id = runs.id AND l.key = $5 AND l.value = $6))
             ORDER BY started_at_ms DESC, id DESC
             LIMIT $7"
        );
        let (label_key, label_value) = filter.label.clone().unzip();
        let rows: Vec<RunRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(filter.scenario_name.as_deref())
            .bind(filter.status.map(RunStatus::as_str))
            .bind(filter.started_after_ms)
            .bind(filter.started_before_ms)
            .bind(label_key)
            .bind(label_value)
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(convert::run_from_row).collect()
    }

    async fn endpoints(&self, run_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        self.read_endpoints(run_id).await
    }

    async fn apply_delta(&self, delta: &Delta) -> Result<ApplyOutcome, StoreError> {
        let endpoints = convert::sorted_endpoints(delta)?;
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs WHERE id = $1 FOR SHARE")
                .bind(&delta.run_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Err(StoreError::NotFound(delta.run_id.clone()));
        };
        let current = Self::lock_watermark(&mut tx, delta).await?;
        let (next, marker) = match convert::decide(delta, &current, &status)? {
            convert::Advance::Duplicate => return Ok(ApplyOutcome::Duplicate),
            convert::Advance::Apply { next, marker } => (next, marker),
        };
        if !marker {
            let result = merge_delta(&mut tx, delta, &endpoints).await;
            match result {
                Err(StoreError::Database(error)) if is_foreign_key_violation(&error) => {
                    return Err(StoreError::Invalid(format!(
                        "delta {} of worker {} refers to an endpoint outside the table of run {}",
                        delta.seq, delta.worker_id, delta.run_id
                    )));
                }
                other => other?,
            }
            Self::merge_checks(&mut tx, delta).await?;
        }
        Self::write_watermark(&mut tx, &delta.run_id, &next).await?;
        crate::fault::point("apply_delta.before_commit");
        tx.commit().await?;
        crate::fault::point("apply_delta.after_commit");
        Ok(ApplyOutcome::Applied)
    }

    async fn apply_batch(
        &self,
        deltas: &[Delta],
    ) -> Result<Vec<Result<ApplyOutcome, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let results = Self::apply_batch_in(&mut tx, deltas).await?;
        crate::fault::point("apply_delta.before_commit");
        tx.commit().await?;
        crate::fault::point("apply_delta.after_commit");
        Ok(results)
    }

    async fn finish_run(&self, run_id: &str, finish: &RunFinish) -> Result<RunRecord, StoreError> {
        convert::check_finish_status(finish.status)?;
        let mut tx = self.pool.begin().await?;
        let run: Option<(String, i64)> =
            sqlx::query_as("SELECT status, started_at_ms FROM runs WHERE id = $1 FOR UPDATE")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, started_at_ms)) = run else {
            return Err(StoreError::NotFound(run_id.to_owned()));
        };
        if status == RunStatus::Running.as_str() {
            Self::write_rollup(
                &mut tx,
                run_id,
                started_at_ms,
                crate::rollup::RollupLevels {
                    summaries: true,
                    minutes: true,
                    tens: true,
                },
            )
            .await?;
            sqlx::query("UPDATE runs SET status = $2, ended_at_ms = $3, error = $4 WHERE id = $1")
                .bind(run_id)
                .bind(finish.status.as_str())
                .bind(finish.ended_at_ms)
                .bind(finish.error.as_deref())
                .execute(&mut *tx)
                .await?;
            Self::write_lost_workers(&mut tx, run_id, &finish.lost_workers).await?;
        }
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row: RunRow = sqlx::query_as(AssertSqlSafe(sql))
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        convert::run_from_row(row)
    }

    async fn summaries(&self, run_id: &str) -> Result<Vec<EndpointTotals>, StoreError> {
        self.read_summaries(run_id).await
    }

    async fn seconds(
        &self,
        run_id: &str,
        from_second: Option<i64>,
    ) -> Result<Vec<SecondRow>, StoreError> {
        self.read_seconds(run_id, from_second).await
    }

    async fn active_users(
        &self,
        run_id: &str,
        from_second: Option<i64>,
    ) -> Result<Vec<ActiveUsers>, StoreError> {
        self.read_active_users(run_id, from_second).await
    }

    async fn dropped(&self, run_id: &str) -> Result<u64, StoreError> {
        self.read_dropped(run_id).await
    }

    async fn failures(&self, run_id: &str) -> Result<Vec<FailureRecord>, StoreError> {
        self.read_failures(run_id).await
    }

    async fn watermarks(&self, run_id: &str) -> Result<Vec<Watermark>, StoreError> {
        self.read_watermarks(run_id).await
    }

    async fn lost_workers(&self, run_id: &str) -> Result<Vec<LostWorkerRecord>, StoreError> {
        self.read_lost_workers(run_id).await
    }

    async fn checks(&self, run_id: &str) -> Result<Vec<crate::CheckTotals>, StoreError> {
        self.read_checks(run_id).await
    }

    async fn thresholds(&self, run_id: &str) -> Result<Vec<ThresholdRecord>, StoreError> {
        self.read_thresholds(run_id).await
    }

    async fn set_label(
        &self,
        run_id: &str,
        key: &str,
        value: &str,
    ) -> Result<RunRecord, StoreError> {
        let tx = self.pool.begin().await?;
        self.write_label(tx, run_id, key, Some(value)).await
    }

    async fn remove_label(&self, run_id: &str, key: &str) -> Result<RunRecord, StoreError> {
        let tx = self.pool.begin().await?;
        self.write_label(tx, run_id, key, None).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<(), StoreError> {
        let tx = self.pool.begin().await?;
        self.write_delete(tx, run_id).await
    }

    async fn seconds_between(
        &self,
        run_id: &str,
        from_second: i64,
        to_second: i64,
    ) -> Result<Vec<SecondRow>, StoreError> {
        self.read_seconds_between(run_id, from_second, to_second)
            .await
    }

    async fn rollup_between(
        &self,
        run_id: &str,
        from_second: i64,
        to_second: i64,
    ) -> Result<Option<RollupSpan>, StoreError> {
        self.read_rollup_between(run_id, from_second, to_second)
            .await
    }

    async fn roll_up(&self, run_id: &str) -> Result<bool, StoreError> {
        let tx = self.pool.begin().await?;
        self.write_roll_up(tx, run_id).await
    }

    async fn latest_passing_run(
        &self,
        scenario_name: &str,
        started_before_ms: i64,
    ) -> Result<Option<RunRecord>, StoreError> {
        self.read_latest_passing(scenario_name, started_before_ms)
            .await
    }

    async fn record_threshold_results(
        &self,
        run_id: &str,
        results: &[ThresholdOutcome],
    ) -> Result<(), StoreError> {
        let tx = self.pool.begin().await?;
        self.write_threshold_results(tx, run_id, results).await
    }

    async fn record_target_sample(
        &self,
        run_id: &str,
        sample: &TargetSample,
    ) -> Result<(), StoreError> {
        self.write_target_sample(run_id, sample).await
    }

    async fn target_samples(&self, run_id: &str) -> Result<Vec<TargetSample>, StoreError> {
        self.read_target_samples(run_id).await
    }
}

/// Merges the delta's rows, users and failures (the watermark is already
/// locked and checked) in a fixed number of statements, whatever the number
/// of endpoints: the rows of the second are created if missing, locked in
/// endpoint order, merged in memory and written back in one `UPDATE`.
async fn merge_delta(
    tx: &mut Transaction<'static, Postgres>,
    delta: &Delta,
    endpoints: &[&EndpointDelta],
) -> Result<(), StoreError> {
    if !endpoints.is_empty() {
        merge_seconds(tx, delta, endpoints).await?;
    }
    sqlx::query(
        "INSERT INTO run_users (run_id, second, active_users, dropped) VALUES ($1, $2, $3, $4)
         ON CONFLICT (run_id, second) DO UPDATE
         SET active_users = run_users.active_users + EXCLUDED.active_users,
             dropped = run_users.dropped + EXCLUDED.dropped",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(i64::from(delta.active_users))
    .bind(to_db(delta.dropped))
    .execute(&mut **tx)
    .await?;
    merge_failures(tx, &delta.run_id, endpoints).await
}

/// Adds the endpoints' failures to the run's (endpoint, kind) rows, locked
/// in that order.
async fn merge_failures(
    tx: &mut Transaction<'static, Postgres>,
    run_id: &str,
    endpoints: &[&EndpointDelta],
) -> Result<(), StoreError> {
    let failures = convert::merged_failures(endpoints);
    if !failures.is_empty() {
        sqlx::query(
            "INSERT INTO run_failures (run_id, endpoint, kind, count, last_message)
             SELECT $1, f.endpoint, f.kind, f.count, f.last_message
             FROM UNNEST($2::int[], $3::text[], $4::bigint[], $5::text[])
                  AS f(endpoint, kind, count, last_message)
             ORDER BY f.endpoint, f.kind
             ON CONFLICT (run_id, endpoint, kind) DO UPDATE
             SET count = run_failures.count + EXCLUDED.count, last_message = EXCLUDED.last_message",
        )
        .bind(run_id)
        .bind(
            failures
                .iter()
                .map(|f| f.endpoint as i32)
                .collect::<Vec<_>>(),
        )
        .bind(failures.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>())
        .bind(failures.iter().map(|f| to_db(f.count)).collect::<Vec<_>>())
        .bind(
            failures
                .iter()
                .map(|f| f.last_message.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Merges the delta's endpoints (sorted, distinct) into their (run, second,
/// endpoint) rows.
async fn merge_seconds(
    tx: &mut Transaction<'static, Postgres>,
    delta: &Delta,
    endpoints: &[&EndpointDelta],
) -> Result<(), StoreError> {
    let indexes: Vec<i32> = endpoints.iter().map(|e| e.endpoint as i32).collect();
    // Missing rows are created empty first, so the next statement can lock
    // every row; an insert that conflicts with a concurrent one waits for it
    // to commit, so the locked row is always the latest committed one.
    sqlx::query(
        "INSERT INTO run_seconds (run_id, second, endpoint, requests, failures, cancelled, bytes, histogram)
         SELECT $1, $2, e, 0, 0, 0, 0, ''::bytea FROM UNNEST($3::int[]) AS e ORDER BY e
         ON CONFLICT (run_id, second, endpoint) DO NOTHING",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(&indexes)
    .execute(&mut **tx)
    .await?;
    let stored: Vec<(i32, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT endpoint, histogram, uncorrected_histogram FROM run_seconds
         WHERE run_id = $1 AND second = $2 AND endpoint = ANY($3)
         ORDER BY endpoint FOR UPDATE",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(&indexes)
    .fetch_all(&mut **tx)
    .await?;
    if stored.len() != endpoints.len() {
        return Err(StoreError::Corrupt(format!(
            "expected {} rows of second {} in run {}, found {}",
            endpoints.len(),
            delta.second,
            delta.run_id,
            stored.len()
        )));
    }
    let mut histograms = Vec::with_capacity(endpoints.len());
    let mut uncorrected = Vec::with_capacity(endpoints.len());
    for (endpoint, (_, bytes, stored_uncorrected)) in endpoints.iter().zip(&stored) {
        let mut histogram = convert::decode(bytes)?;
        convert::merge(&mut histogram, &endpoint.histogram)?;
        histograms.push(convert::encode(&histogram)?);
        uncorrected.push(convert::merge_optional(
            stored_uncorrected.as_deref(),
            endpoint.uncorrected.as_ref(),
        )?);
    }
    let column = |f: fn(&EndpointDelta) -> u64| -> Vec<i64> {
        endpoints.iter().map(|e| to_db(f(e))).collect()
    };
    sqlx::query(
        "UPDATE run_seconds AS s
         SET requests = s.requests + u.requests, failures = s.failures + u.failures,
             cancelled = s.cancelled + u.cancelled, bytes = s.bytes + u.bytes, histogram = u.histogram,
             uncorrected_histogram = u.uncorrected_histogram
         FROM UNNEST($3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bytea[], $9::bytea[])
              AS u(endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram)
         WHERE s.run_id = $1 AND s.second = $2 AND s.endpoint = u.endpoint",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(&indexes)
    .bind(column(|e| e.counts.requests))
    .bind(column(|e| e.counts.failures))
    .bind(column(|e| e.counts.cancelled))
    .bind(column(|e| e.counts.bytes))
    .bind(&histograms)
    .bind(&uncorrected)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
