//! The store's error type; `sqlx::Error` is converted here and at the call
//! sites that know what a constraint violation means.

/// Errors from the run store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database url {0:?}: expected postgres://, postgresql://, sqlite: or a file path"
    )]
    UnsupportedUrl(String),
    #[error("run {0} already exists")]
    AlreadyExists(String),
    #[error("run {0} not found")]
    NotFound(String),
    #[error("run {0} has finished and takes no more deltas")]
    RunFinished(String),
    #[error(
        "delta {got} of worker {worker_id} in run {run_id} arrived before delta {expected}: resend the missing deltas first"
    )]
    Gap {
        run_id: String,
        worker_id: String,
        expected: u64,
        got: u64,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("failed to apply migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    /// True for errors worth retrying unchanged (connection trouble, pool
    /// exhaustion, serialization conflicts), false for errors in the request.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => match error {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // serialization_failure, deadlock_detected (Postgres); busy / locked (SQLite)
                // ...and the server shutting down or starting (57P0x) or a
                // connection exception (class 08): a database restart.
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    matches!(
                        &*code,
                        "40001" | "40P01" | "5" | "6" | "57P01" | "57P02" | "57P03"
                    ) || code.starts_with("08")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(error)
    }
}

/// True when `error` is a unique or primary key violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when `error` is a foreign key violation.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
