//! The cicada run store: runs, their endpoint tables, per-second measurements
//! merged across workers, failures, per-endpoint summaries, pass/fail
//! thresholds with their final results and the per-worker sequence
//! watermarks that make ingestion exactly-once.
//!
//! One object-safe trait, [`Store`], with one implementation per database:
//! Postgres ([`postgres::PgStore`]) for shared deployments and SQLite
//! ([`sqlite::SqliteStore`]) as the embedded default. [`connect`] picks one by
//! URL and applies the migrations in `migrations/{postgres,sqlite}`.
//!
//! Layout:
//! - `model`: the records read and written (no protocol types).
//! - `error`: [`StoreError`]; `sqlx::Error` never leaves this crate unwrapped.
//! - `convert`: column conversions and merging shared by both databases.
//! - `reads`: the read queries both databases share (one macro).
//! - `history`: labelling, deleting, windows and the latest passing run,
//!   shared the same way.
//! - `postgres`, `sqlite`: the implementations. Postgres locks rows (`FOR
//!   SHARE` on the run, `FOR UPDATE` on the watermark and on merged rows) so
//!   several collectors can ingest into one database; SQLite serializes
//!   writers (`BEGIN IMMEDIATE` plus an in-process lock).
//! - `rollup`: the per-minute and per-10-second rollup of ended runs
//!   (written at finish, read for windows), shared the same way.
//! - `target`: per-second target resource samples (SQL shared by both).
//! - `checks`: each run's response checks with their pass/fail counts
//!   (SQL shared by both).
//! - `delivery`: each delta source's watermark row with what was received
//!   from it, and the lost workers (SQL shared by both).
//! - `fault`: crash injection at named points for the fault tests
//!   (`CICADA_FAULT=POINT:N`).
//! - `testing` (feature `testsuite`): fresh databases for tests.
//!
//! The conformance suite in `tests/conformance.rs` runs the same tests
//! against both implementations.

mod checks;
mod convert;
mod delivery;
mod error;
mod fault;
mod history;
mod model;
pub mod postgres;
mod reads;
mod rollup;
pub mod sqlite;
mod target;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use model::{
    ActiveUsers, ApplyOutcome, CONNECT_METHOD, CheckCount, CheckDef, CheckTotals, Delta, Endpoint,
    EndpointDelta, EndpointTotals, FailureCount, FailureRecord, GROUP_METHOD, LostWorkerRecord,
    NewRun, RollupRow, RollupSpan, RunFilter, RunFinish, RunRecord, RunStatus, SecondRow,
    TLS_METHOD, TargetSample, ThresholdDef, ThresholdOutcome, ThresholdRecord, Watermark,
    is_connection_method, is_request_method,
};

/// Persistent storage of runs and their measurements.
///
/// Every method is one transaction (or one read); implementations are safe to
/// share between tasks as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers (a trivial query), for health.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether several collector processes may write this store at once
    /// (Postgres: row locks in one fixed order). Their in-memory views then
    /// each hold a share of a run, so live figures are read from the store.
    fn shared(&self) -> bool {
        false
    }

    /// Stores a new run (status running) with its endpoint table and labels.
    /// [`StoreError::AlreadyExists`] when the id is taken.
    async fn create_run(&self, run: &NewRun) -> Result<(), StoreError>;

    /// The run with this id, if any.
    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;

    /// Runs matching `filter`, newest first (by start time, then id).
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;

    /// The run's endpoint table ordered by index (empty for an unknown run).
    async fn endpoints(&self, run_id: &str) -> Result<Vec<Endpoint>, StoreError>;

    /// Applies one worker delta exactly once, in one transaction: `seq` at or
    /// below the worker's watermark is a [`ApplyOutcome::Duplicate`] (nothing
    /// changes), `first_seq == watermark + 1` merges counts, histograms,
    /// active users and failures and advances the watermark (with the
    /// source's received requests, last interval end, peak rate and evicted
    /// requests), anything higher is [`StoreError::Gap`]. [`StoreError::NotFound`] for an unknown run,
    /// [`StoreError::RunFinished`] for a new delta to a finished run,
    /// [`StoreError::Invalid`] for an endpoint not in the run's table.
    async fn apply_delta(&self, delta: &Delta) -> Result<ApplyOutcome, StoreError>;

    /// Applies `deltas` (of any runs and sources) in one transaction, as
    /// [`apply_delta`](Store::apply_delta) would one by one in order, each
    /// result in its delta's place; rows several deltas share are written
    /// once. `Err` when the transaction itself failed (nothing applied).
    async fn apply_batch(
        &self,
        deltas: &[Delta],
    ) -> Result<Vec<Result<ApplyOutcome, StoreError>>, StoreError>;

    /// Ends a running run: merges every second into per-endpoint summaries
    /// and records status, end time, error and lost workers. A run that has already ended
    /// is returned unchanged (finishing is idempotent).
    async fn finish_run(&self, run_id: &str, finish: &RunFinish) -> Result<RunRecord, StoreError>;

    /// Per-endpoint summaries written at finish, ordered by endpoint (empty
    /// while the run is live).
    async fn summaries(&self, run_id: &str) -> Result<Vec<EndpointTotals>, StoreError>;

    /// Per-second rows from `from_second` on (all when `None`), ordered by
    /// second then endpoint.
    async fn seconds(
        &self,
        run_id: &str,
        from_second: Option<i64>,
    ) -> Result<Vec<SecondRow>, StoreError>;

    /// Active users (and open-model dropped iterations) per second from
    /// `from_second` on, ordered by second.
    async fn active_users(
        &self,
        run_id: &str,
        from_second: Option<i64>,
    ) -> Result<Vec<ActiveUsers>, StoreError>;

    /// Open model: iterations dropped over the whole run (0 in the closed model).
    async fn dropped(&self, run_id: &str) -> Result<u64, StoreError>;

    /// Failures by endpoint and kind, ordered by endpoint then kind.
    async fn failures(&self, run_id: &str) -> Result<Vec<FailureRecord>, StoreError>;

    /// Every worker's applied-sequence watermark, ordered by worker id.
    async fn watermarks(&self, run_id: &str) -> Result<Vec<Watermark>, StoreError>;

    /// The workers recorded at finish as lost without their final flush,
    /// ordered by worker id then source.
    async fn lost_workers(&self, run_id: &str) -> Result<Vec<LostWorkerRecord>, StoreError>;

    /// The run's response checks ordered by index, with their pass/fail
    /// counts so far (empty for an unknown run or one without checks).
    async fn checks(&self, run_id: &str) -> Result<Vec<CheckTotals>, StoreError>;

    /// The run's thresholds ordered by index, with their results once
    /// recorded (empty for an unknown run).
    async fn thresholds(&self, run_id: &str) -> Result<Vec<ThresholdRecord>, StoreError>;

    /// Records the final results of an ended run's thresholds (recording
    /// again overwrites). [`StoreError::NotFound`] for an unknown run,
    /// [`StoreError::Invalid`] for a run still running or an index outside
    /// its list (then nothing is written).
    async fn record_threshold_results(
        &self,
        run_id: &str,
        results: &[ThresholdOutcome],
    ) -> Result<(), StoreError>;

    /// Sets label `key` of a run to `value` (replacing an existing value)
    /// and returns the run. [`StoreError::NotFound`] for an unknown run,
    /// [`StoreError::Invalid`] for an empty key or one containing `=`.
    async fn set_label(
        &self,
        run_id: &str,
        key: &str,
        value: &str,
    ) -> Result<RunRecord, StoreError>;

    /// Removes label `key` of a run (nothing happens when it has none) and
    /// returns the run. [`StoreError::NotFound`] for an unknown run.
    async fn remove_label(&self, run_id: &str, key: &str) -> Result<RunRecord, StoreError>;

    /// Deletes an ended run and every row of it. [`StoreError::NotFound`]
    /// for an unknown run, [`StoreError::Invalid`] for a run still running.
    async fn delete_run(&self, run_id: &str) -> Result<(), StoreError>;

    /// Per-second rows with `from_second <= second < to_second` (Unix
    /// seconds), ordered by second then endpoint.
    async fn seconds_between(
        &self,
        run_id: &str,
        from_second: i64,
        to_second: i64,
    ) -> Result<Vec<SecondRow>, StoreError>;

    /// The whole rollup blocks of the window `[from_second, to_second)`
    /// (Unix seconds) of an ended run, see [`RollupSpan`]: its whole
    /// minutes, then whole 10-second blocks towards the edges (blocks start
    /// at the second the run started in plus multiples of their span).
    /// Without the 10-second level (a run rolled up before migration 0007)
    /// the span is the whole minutes only. `None` when the run has no
    /// rollup (unknown, still running, or ended before the rollup existed
    /// and not rolled up since): read
    /// [`seconds_between`](Self::seconds_between) instead.
    async fn rollup_between(
        &self,
        run_id: &str,
        from_second: i64,
        to_second: i64,
    ) -> Result<Option<RollupSpan>, StoreError>;

    /// Builds the rollup levels (minutes, 10-second blocks) an ended run
    /// lacks from its per-second rows (finishing a run builds both; this is
    /// for runs that ended before a level existed). Returns `false` when the
    /// run already had every level (nothing changes).
    /// [`StoreError::NotFound`] for an unknown run, [`StoreError::Invalid`]
    /// for a run still running.
    async fn roll_up(&self, run_id: &str) -> Result<bool, StoreError>;

    /// The newest run of `scenario_name` started before `started_before_ms`
    /// that finished without error with every threshold recorded as passed
    /// (a run without thresholds passes).
    async fn latest_passing_run(
        &self,
        scenario_name: &str,
        started_before_ms: i64,
    ) -> Result<Option<RunRecord>, StoreError>;
    /// Stores one target resource sample of a run (a second sampled again
    /// is overwritten). [`StoreError::NotFound`] for an unknown run.
    async fn record_target_sample(
        &self,
        run_id: &str,
        sample: &TargetSample,
    ) -> Result<(), StoreError>;

    /// The run's target resource samples ordered by second (empty when the
    /// run sampled none).
    async fn target_samples(&self, run_id: &str) -> Result<Vec<TargetSample>, StoreError>;
}

/// Which database a URL names.
enum Backend<'a> {
    Postgres,
    SqliteUrl,
    SqlitePath(&'a std::path::Path),
}

fn backend(database_url: &str) -> Result<Backend<'_>, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if database_url.starts_with("sqlite:") {
        Ok(Backend::SqliteUrl)
    } else if !database_url.is_empty() && !database_url.contains("://") {
        Ok(Backend::SqlitePath(std::path::Path::new(database_url)))
    } else {
        Err(StoreError::UnsupportedUrl(database_url.to_owned()))
    }
}

/// Checks that [`connect`] understands `database_url`, without connecting
/// (so a binary can reject bad configuration before binding ports).
pub fn check_database_url(database_url: &str) -> Result<(), StoreError> {
    backend(database_url).map(|_| ())
}

/// Connects to the database named by `database_url` and applies the
/// migrations.
///
/// - `postgres://...` or `postgresql://...`: Postgres.
/// - `sqlite:...` or a plain file path such as `./cicada.db`: SQLite, the
///   file created if missing, in WAL mode with a busy timeout.
pub async fn connect(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match backend(database_url)? {
        Backend::Postgres => Arc::new(postgres::PgStore::connect(database_url).await?),
        Backend::SqliteUrl => Arc::new(sqlite::SqliteStore::connect(database_url).await?),
        Backend::SqlitePath(path) => Arc::new(sqlite::SqliteStore::open_path(path).await?),
    })
}
