//! Per-run state in the collector, one async lock per run.
//!
//! Holding a run's lock across "apply to the database, then update the live
//! aggregate" (and across rebuilding the aggregate from the database) keeps
//! the in-memory aggregate equal to what this collector has committed, with
//! no window where a delta is in one and not the other. The price is that
//! deltas of one run are applied one at a time per collector, which is also
//! how SQLite applies them anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cicada_proto::v1;
use cicada_store::{Endpoint, RunRecord, RunStatus, Store};

use crate::error::CollectorError;
use crate::live::LiveAggregate;

/// What the collector knows about one run.
#[derive(Debug)]
pub(crate) struct RunState {
    pub record: RunRecord,
    pub endpoints: Vec<Endpoint>,
    /// The running aggregate while the run is live.
    pub live: Option<LiveAggregate>,
    /// Final statistics, computed once after the run ended.
    pub final_stats: Option<v1::RunStats>,
}

/// A run's lock; `None` until its state has been loaded or created.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<RunState>>>;

/// The runs this collector has seen.
pub(crate) struct Runs {
    store: Arc<dyn Store>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Runs {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The lock of `run_id` (created empty on first use).
    pub(crate) fn slot(&self, run_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(run_id.to_owned()).or_default().clone()
    }

    /// The state in `guard`, loaded from the store first if needed:
    /// [`CollectorError`] `NOT_FOUND` for an unknown run. A live run's
    /// aggregate is rebuilt from its stored seconds (once per collector
    /// lifetime, e.g. after a restart).
    pub(crate) async fn loaded<'g>(
        &self,
        run_id: &str,
        guard: &'g mut Option<RunState>,
    ) -> Result<&'g mut RunState, CollectorError> {
        if guard.is_none() {
            *guard = Some(self.load(run_id).await?);
        }
        Ok(guard.as_mut().expect("state was just loaded"))
    }

    async fn load(&self, run_id: &str) -> Result<RunState, CollectorError> {
        let record = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| cicada_store::StoreError::NotFound(run_id.to_owned()))?;
        let endpoints = self.store.endpoints(run_id).await?;
        let live = if record.status == RunStatus::Running {
            let mut live = LiveAggregate::new(endpoints.len());
            for row in self.store.seconds(run_id, None).await? {
                live.add_row(&row);
            }
            for users in self.store.active_users(run_id, None).await? {
                live.add_active_users(&users);
            }
            for failure in self.store.failures(run_id).await? {
                live.add_failure_record(&failure);
            }
            tracing::info!(run_id, "rebuilt the live aggregate from the store");
            Some(live)
        } else {
            None
        };
        Ok(RunState {
            record,
            endpoints,
            live,
            final_stats: None,
        })
    }
}
