//! Per-run state in the collector, behind one async read-write lock per run.
//!
//! Applying a delta holds the run's lock for reading across "commit to the
//! database, then add to the live aggregate", so deltas of different workers
//! apply concurrently (Postgres merges them under row locks; SQLite
//! serializes them itself). Rebuilding the aggregate from the database and
//! finishing the run hold it for writing, so neither can observe a delta that
//! is committed but not yet in the aggregate: the aggregate always equals what
//! this collector has committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cicada_proto::v1;
use cicada_store::{Endpoint, RunRecord, RunStatus, Store, StoreError};
use tokio::sync::{
    OnceCell, OwnedRwLockMappedWriteGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock,
};

use crate::error::CollectorError;
use crate::live::LiveAggregate;
use crate::merged::MergedLive;
use crate::threshold::{self, RunThreshold};

/// What the collector knows about one run.
#[derive(Debug)]
pub(crate) struct RunState {
    pub record: RunRecord,
    pub endpoints: Vec<Endpoint>,
    /// Pass/fail thresholds, in order.
    pub thresholds: Vec<RunThreshold>,
    /// The running aggregate while the run is live.
    pub live: Option<Mutex<LiveAggregate>>,
    /// Final statistics, computed once after the run ended.
    pub final_stats: OnceCell<v1::RunStats>,
    /// The live figures read merged from a shared store (`merged`).
    pub merged: tokio::sync::Mutex<MergedLive>,
}

impl RunState {
    /// The state of a run just created.
    pub(crate) fn created(
        record: RunRecord,
        endpoints: Vec<Endpoint>,
        thresholds: Vec<RunThreshold>,
    ) -> Self {
        Self {
            live: Some(Mutex::new(LiveAggregate::new(&endpoints))),
            merged: tokio::sync::Mutex::new(MergedLive::new(&endpoints)),
            record,
            endpoints,
            thresholds,
            final_stats: OnceCell::new(),
        }
    }

    /// Runs `f` on the live aggregate, if the run is live.
    pub(crate) fn with_live<R>(&self, f: impl FnOnce(&mut LiveAggregate) -> R) -> Option<R> {
        self.live
            .as_ref()
            .map(|live| f(&mut live.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// A run's lock; `None` until its state has been loaded or created.
type Slot = Arc<RwLock<Option<RunState>>>;

/// Shared access to a loaded run.
pub(crate) type ReadGuard = OwnedRwLockReadGuard<Option<RunState>, RunState>;
/// Exclusive access to a loaded run.
pub(crate) type WriteGuard = OwnedRwLockMappedWriteGuard<Option<RunState>, RunState>;

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

    fn slot(&self, run_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(run_id.to_owned()).or_default().clone()
    }

    /// Installs the state of a run just created in the store.
    pub(crate) async fn insert(&self, state: RunState) {
        let slot = self.slot(&state.record.id);
        *slot.write_owned().await = Some(state);
    }

    /// Drops what is known about a run so the next access reloads it from
    /// the store (e.g. another collector finished it).
    pub(crate) async fn invalidate(&self, run_id: &str) {
        *self.slot(run_id).write_owned().await = None;
    }

    /// Shared access to a run, loading it first if needed (`NOT_FOUND` for
    /// an unknown run).
    pub(crate) async fn read(&self, run_id: &str) -> Result<ReadGuard, CollectorError> {
        let slot = self.slot(run_id);
        let guard = slot.clone().read_owned().await;
        if guard.is_some() {
            return Ok(OwnedRwLockReadGuard::map(guard, |state| {
                state.as_ref().expect("checked above")
            }));
        }
        drop(guard);
        let guard = self.loaded(slot, run_id).await?;
        Ok(OwnedRwLockWriteGuard::downgrade_map(guard, |state| {
            state.as_ref().expect("loaded")
        }))
    }

    /// Exclusive access to a run, loading it first if needed.
    pub(crate) async fn write(&self, run_id: &str) -> Result<WriteGuard, CollectorError> {
        let guard = self.loaded(self.slot(run_id), run_id).await?;
        Ok(OwnedRwLockWriteGuard::map(guard, |state| {
            state.as_mut().expect("loaded")
        }))
    }

    async fn loaded(
        &self,
        slot: Slot,
        run_id: &str,
    ) -> Result<OwnedRwLockWriteGuard<Option<RunState>>, CollectorError> {
        let mut guard = slot.write_owned().await;
        if guard.is_none() {
            *guard = Some(self.load(run_id).await?);
        }
        Ok(guard)
    }

    /// Reads a run from the store; a live run's aggregate is rebuilt from its
    /// stored seconds (once per collector lifetime, e.g. after a restart).
    async fn load(&self, run_id: &str) -> Result<RunState, CollectorError> {
        let record = self
            .store
            .get_run(run_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(run_id.to_owned()))?;
        let endpoints = self.store.endpoints(run_id).await?;
        let defs: Vec<_> = self
            .store
            .thresholds(run_id)
            .await?
            .into_iter()
            .map(|record| record.threshold)
            .collect();
        let thresholds = threshold::resolve_all(&defs, &endpoints)
            .map_err(|error| StoreError::Corrupt(format!("run {run_id}: {error}")))?;
        let live = if record.status == RunStatus::Running && self.store.shared() {
            // Live figures come from the store (`merged`): nothing to rebuild.
            Some(Mutex::new(LiveAggregate::new(&endpoints)))
        } else if record.status == RunStatus::Running {
            let mut live = LiveAggregate::new(&endpoints);
            for row in self.store.seconds(run_id, None).await? {
                live.add_row(&row);
            }
            for users in self.store.active_users(run_id, None).await? {
                live.add_active_users(&users);
            }
            for failure in self.store.failures(run_id).await? {
                live.add_failure_record(&failure);
            }
            for mark in self.store.watermarks(run_id).await? {
                live.add_evicted(mark.evicted_requests);
            }
            tracing::info!(run_id, "rebuilt the live aggregate from the store");
            Some(Mutex::new(live))
        } else {
            None
        };
        Ok(RunState {
            merged: tokio::sync::Mutex::new(MergedLive::new(&endpoints)),
            record,
            endpoints,
            thresholds,
            live,
            final_stats: OnceCell::new(),
        })
    }
}
