//! [`HistoryError`].

use cicada_store::StoreError;

/// Why a history query failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// No run with this id.
    #[error("run {0} not found")]
    NotFound(String),
    /// `--baseline latest-passing` found nothing to compare with.
    #[error(
        "no passing run of scenario {scenario:?} started before run {run_id} (a passing run finished without error and passed every threshold)"
    )]
    NoBaseline { scenario: String, run_id: String },
    /// A bad argument (window, tolerance, metric, endpoint).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A remote History service failed in a way no other variant
    /// describes (unreachable, internal error, malformed answer).
    #[error("the history service failed ({code:?}): {message}")]
    Remote { code: tonic::Code, message: String },
}
