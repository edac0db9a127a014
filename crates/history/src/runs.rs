//! Listing, labelling and deleting runs, with the store's "not found"
//! reported as [`HistoryError::NotFound`] like every other query.

use cicada_store::{RunFilter, Store, StoreError};

use crate::{HistoryError, RunInfo};

/// Stored runs matching `filter`, newest first.
pub async fn search(store: &dyn Store, filter: &RunFilter) -> Result<Vec<RunInfo>, HistoryError> {
    Ok(store
        .list_runs(filter)
        .await?
        .iter()
        .map(RunInfo::from)
        .collect())
}

/// Sets label `key` of a run to `value`, or removes it when `value` is
/// `None`, and returns the run.
pub async fn label(
    store: &dyn Store,
    run_id: &str,
    key: &str,
    value: Option<&str>,
) -> Result<RunInfo, HistoryError> {
    let record = match value {
        Some(value) => store.set_label(run_id, key, value).await,
        None => store.remove_label(run_id, key).await,
    };
    Ok(RunInfo::from(&record.map_err(not_found)?))
}

/// Deletes an ended run and everything stored with it.
pub async fn delete(store: &dyn Store, run_id: &str) -> Result<(), HistoryError> {
    store.delete_run(run_id).await.map_err(not_found)
}

fn not_found(error: StoreError) -> HistoryError {
    match error {
        StoreError::NotFound(run_id) => HistoryError::NotFound(run_id),
        error => HistoryError::Store(error),
    }
}
