//! The SQLite implementation of [`Store`], the embedded default.
//!
//! Concurrency: SQLite has one writer at a time. Writes take an in-process
//! lock and then `BEGIN IMMEDIATE` (the database write lock, waited for with
//! the busy timeout when another process holds it), so a read-merge-write of
//! a row can never interleave with another. WAL mode lets reads run
//! alongside.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};
use tokio::sync::Mutex;

use crate::convert::{self, RUN_COLUMNS, RunRow, to_db};
use crate::error::{is_foreign_key_violation, is_unique_violation};
use crate::{
    ActiveUsers, ApplyOutcome, Delta, Endpoint, EndpointDelta, EndpointTotals, FailureRecord,
    LostWorkerRecord, NewRun, RollupSpan, RunFilter, RunFinish, RunRecord, RunStatus, SecondRow,
    Store, StoreError, TargetSample, ThresholdOutcome, ThresholdRecord, Watermark,
};

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies the migrations. SQLite has no advisory lock to serialize two
/// processes migrating the same new file at once: the loser fails on a table
/// the winner just created, and succeeds when it tries again.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let migrator = sqlx::migrate!("../../migrations/sqlite");
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < MIGRATE_ATTEMPTS => {
                attempt += 1;
                tracing::debug!(%error, attempt, "retrying migrations");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Tries at migrating before giving up.
const MIGRATE_ATTEMPTS: u64 = 5;

/// Runs and measurements in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serializes this process's writers before they reach SQLite's lock.
    writer: Mutex<()>,
}

impl SqliteStore {
    /// Opens the database named by a `sqlite:` URL (created if missing) and
    /// applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        // Every connection to an in-memory database is a separate database.
        let max_connections = if url.contains(":memory:") || url.contains("mode=memory") {
            1
        } else {
            4
        };
        Self::open(options, max_connections).await
    }

    /// Opens (creating if missing) the database file at `path` and applies
    /// the migrations.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        Self::open(SqliteConnectOptions::new().filename(path), 4).await
    }

    async fn open(options: SqliteConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        migrate(&pool).await?;
        Ok(Self {
            pool,
            writer: Mutex::new(()),
        })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction holding the database write lock from its first statement,
    /// so it never fails to upgrade a read lock halfway through.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

crate::reads::shared_reads!(SqliteStore);
crate::history::shared_history!(SqliteStore, sqlx::Sqlite);
crate::rollup::shared_rollup!(SqliteStore, sqlx::Sqlite);
crate::target::target_samples!(SqliteStore);
crate::delivery::shared_delivery!(SqliteStore, sqlx::Sqlite, "", "");
crate::checks::shared_checks!(SqliteStore, sqlx::Sqlite);

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: &NewRun) -> Result<(), StoreError> {
        convert::check_endpoints(run)?;
        let _writer = self.writer.lock().await;
        let mut tx = self.begin_write().await?;
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
             WHERE ($1 IS NULL OR scenario_name = $1)
               AND ($2 IS NULL OR status = $2)
               AND ($3 IS NULL OR started_at_ms >= $3)
               AND ($4 IS NULL OR started_at_ms < $4)
               AND ($5 IS NULL OR EXISTS (
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
        let _writer = self.writer.lock().await;
        let mut tx = self.begin_write().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
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
        let _writer = self.writer.lock().await;
        let mut tx = self.begin_write().await?;
        let results = Self::apply_batch_in(&mut tx, deltas).await?;
        crate::fault::point("apply_delta.before_commit");
        tx.commit().await?;
        crate::fault::point("apply_delta.after_commit");
        Ok(results)
    }

    async fn finish_run(&self, run_id: &str, finish: &RunFinish) -> Result<RunRecord, StoreError> {
        convert::check_finish_status(finish.status)?;
        let _writer = self.writer.lock().await;
        let mut tx = self.begin_write().await?;
        let run: Option<(String, i64)> =
            sqlx::query_as("SELECT status, started_at_ms FROM runs WHERE id = $1")
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
        let _writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
        self.write_label(tx, run_id, key, Some(value)).await
    }

    async fn remove_label(&self, run_id: &str, key: &str) -> Result<RunRecord, StoreError> {
        let _writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
        self.write_label(tx, run_id, key, None).await
    }

    async fn delete_run(&self, run_id: &str) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
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
        let _writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
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
        let _writer = self.writer.lock().await;
        let tx = self.begin_write().await?;
        self.write_threshold_results(tx, run_id, results).await
    }

    async fn record_target_sample(
        &self,
        run_id: &str,
        sample: &TargetSample,
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        self.write_target_sample(run_id, sample).await
    }

    async fn target_samples(&self, run_id: &str) -> Result<Vec<TargetSample>, StoreError> {
        self.read_target_samples(run_id).await
    }
}

/// Merges the delta's rows, users and failures (the watermark is already
/// locked and checked).
async fn merge_delta(
    tx: &mut Transaction<'static, Sqlite>,
    delta: &Delta,
    endpoints: &[&EndpointDelta],
) -> Result<(), StoreError> {
    for endpoint in endpoints {
        merge_second(tx, delta, endpoint).await?;
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

/// Adds the endpoints' failures to the run's (endpoint, kind) rows.
async fn merge_failures(
    tx: &mut Transaction<'static, Sqlite>,
    run_id: &str,
    endpoints: &[&EndpointDelta],
) -> Result<(), StoreError> {
    for failure in convert::merged_failures(endpoints) {
        sqlx::query(
            "INSERT INTO run_failures (run_id, endpoint, kind, count, last_message) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (run_id, endpoint, kind) DO UPDATE
             SET count = run_failures.count + EXCLUDED.count, last_message = EXCLUDED.last_message",
        )
        .bind(run_id)
        .bind(failure.endpoint as i32)
        .bind(&failure.kind)
        .bind(to_db(failure.count))
        .bind(&failure.last_message)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts the (run, second, endpoint) row, or merges into the existing one
/// (the write transaction excludes every other writer).
async fn merge_second(
    tx: &mut Transaction<'static, Sqlite>,
    delta: &Delta,
    endpoint: &EndpointDelta,
) -> Result<(), StoreError> {
    let counts = &endpoint.counts;
    let inserted = sqlx::query(
        "INSERT INTO run_seconds (run_id, second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (run_id, second, endpoint) DO NOTHING",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(endpoint.endpoint as i32)
    .bind(to_db(counts.requests))
    .bind(to_db(counts.failures))
    .bind(to_db(counts.cancelled))
    .bind(to_db(counts.bytes))
    .bind(convert::encode(&endpoint.histogram)?)
    .bind(convert::encode_optional(endpoint.uncorrected.as_ref())?)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(());
    }
    let (stored, stored_uncorrected): (Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT histogram, uncorrected_histogram FROM run_seconds WHERE run_id = $1 AND second = $2 AND endpoint = $3",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(endpoint.endpoint as i32)
    .fetch_one(&mut **tx)
    .await?;
    let mut histogram = convert::decode(&stored)?;
    convert::merge(&mut histogram, &endpoint.histogram)?;
    let uncorrected =
        convert::merge_optional(stored_uncorrected.as_deref(), endpoint.uncorrected.as_ref())?;
    sqlx::query(
        "UPDATE run_seconds
         SET requests = requests + $4, failures = failures + $5, cancelled = cancelled + $6,
             bytes = bytes + $7, histogram = $8, uncorrected_histogram = $9
         WHERE run_id = $1 AND second = $2 AND endpoint = $3",
    )
    .bind(&delta.run_id)
    .bind(delta.second)
    .bind(endpoint.endpoint as i32)
    .bind(to_db(counts.requests))
    .bind(to_db(counts.failures))
    .bind(to_db(counts.cancelled))
    .bind(to_db(counts.bytes))
    .bind(convert::encode(&histogram)?)
    .bind(uncorrected)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
