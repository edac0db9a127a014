//! The runs the controller knows: at most one active, plus a bounded memory
//! of finished ones so `WatchRun` can still report their end.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use cicada_proto::v1::{Diagnosis, RunState, RunStats, WorkDone};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::ControllerError;
use crate::registry::LastHeard;

/// Finished runs kept in memory for late watchers.
const KEEP_FINISHED: usize = 64;

/// What a run looks like from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    pub state: RunState,
    /// Why the run failed, or why a threshold stopped it early.
    pub error: String,
    /// True when a threshold with `abort_on_fail` stopped the run.
    pub threshold_aborted: bool,
    /// Why the run ended early without failing (a `unique` data set ran out).
    pub stop_reason: String,
    /// The collector's final statistics, once `FinishRun` answered.
    pub final_stats: Option<RunStats>,
    /// Total users the run aims at now (changed by scaling and stages).
    pub target_users: u32,
    /// Open model: iterations per second across all workers now (0 in the
    /// closed model).
    pub target_rate: f64,
    /// The open model (a rate), not the closed one (users).
    pub open: bool,
    /// Workers taking part now (changed by joins, leaves and rebalancing).
    pub workers: u32,
    /// What limits the run, as last diagnosed.
    pub diagnoses: Vec<Diagnosis>,
    /// Workers lost without their final flush so far (ids).
    pub lost_workers: Vec<String>,
    /// What the run was started with (empty for a run taken over after a
    /// controller restart).
    pub plan: RunPlan,
}

/// What a run was started with, for the web UI's header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPlan {
    pub scenario_name: String,
    pub host: String,
    pub started_at_ms: i64,
    /// `None`: until stopped.
    pub run_time_ms: Option<u64>,
}

impl RunStatus {
    /// True once the run will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, RunState::Finished | RunState::Failed)
    }
}

/// Inputs of a run's life cycle task.
#[derive(Debug)]
pub enum RunEvent {
    /// `StopRun` was called.
    Stop,
    /// A worker reported `WorkDone` for this run.
    Done { worker_id: String, done: WorkDone },
    /// A worker's stream ended (or it missed its heartbeats), with its last
    /// heartbeat about the run, if any.
    Gone {
        worker_id: String,
        last: Option<LastHeard>,
    },
    /// A worker connected while the run is active: it may take a share.
    Joined { worker_id: String, cores: u32 },
    /// `ScaleRun`: a new total of users, moved to at `spawn_rate` (or the
    /// run's own spawn rate).
    Scale { users: u32, spawn_rate: Option<f64> },
    /// `ScaleRun` of an open-model run: a new total rate.
    ScaleRate { rate: f64 },
    /// The last row of a `unique` data set was handed out.
    DataExhausted(crate::data::Exhaustion),
}

impl RunEvent {
    /// The worker the event is about, if any.
    pub fn worker_id(&self) -> Option<&str> {
        match self {
            RunEvent::Done { worker_id, .. }
            | RunEvent::Gone { worker_id, .. }
            | RunEvent::Joined { worker_id, .. } => Some(worker_id),
            RunEvent::Stop
            | RunEvent::Scale { .. }
            | RunEvent::ScaleRate { .. }
            | RunEvent::DataExhausted(_) => None,
        }
    }
}

/// One run.
#[derive(Debug)]
pub struct Run {
    pub id: String,
    pub status: watch::Sender<RunStatus>,
    pub events: mpsc::UnboundedSender<RunEvent>,
    /// Its data files, set when it starts (not for a run taken over after
    /// a controller restart).
    pub data: std::sync::OnceLock<crate::data::RunData>,
}

impl Run {
    /// A run in state STARTING and the receiver of its events.
    pub fn new(
        id: String,
        target_users: u32,
        target_rate: f64,
        workers: u32,
    ) -> (Arc<Run>, mpsc::UnboundedReceiver<RunEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let (status, _) = watch::channel(RunStatus {
            state: RunState::Starting,
            error: String::new(),
            threshold_aborted: false,
            stop_reason: String::new(),
            final_stats: None,
            target_users,
            target_rate,
            open: target_rate > 0.0,
            workers,
            diagnoses: Vec::new(),
            lost_workers: Vec::new(),
            plan: RunPlan::default(),
        });
        let run = Run {
            id,
            status,
            events,
            data: std::sync::OnceLock::new(),
        };
        (Arc::new(run), receiver)
    }

    /// Sends an event to the life cycle task (ignored once it has ended).
    pub fn send(&self, event: RunEvent) {
        let _ = self.events.send(event);
    }

    /// Moves to `state` (and keeps the rest).
    pub fn set_state(&self, state: RunState) {
        self.status.send_modify(|status| status.state = state);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// The run being started or running; reserved before any await so two
    /// `StartRun` calls cannot both pass the one-run check.
    active: Option<String>,
    runs: HashMap<String, Arc<Run>>,
    finished: VecDeque<String>,
}

/// Every known run.
#[derive(Debug, Default)]
pub struct Runs {
    inner: Mutex<Inner>,
}

impl Runs {
    /// Reserves the single active slot for `run_id`.
    pub fn reserve(&self, run_id: &str) -> Result<(), ControllerError> {
        let mut inner = self.inner.lock();
        if let Some(active) = &inner.active {
            return Err(ControllerError::RunActive(active.clone()));
        }
        inner.active = Some(run_id.to_owned());
        Ok(())
    }

    /// Frees the active slot if `run_id` holds it (a start that failed).
    pub fn unreserve(&self, run_id: &str) {
        let mut inner = self.inner.lock();
        if inner.active.as_deref() == Some(run_id) {
            inner.active = None;
        }
    }

    /// Makes a started run visible to `WatchRun`, `StopRun` and events.
    pub fn insert(&self, run: Arc<Run>) {
        self.inner.lock().runs.insert(run.id.clone(), run);
    }

    /// The run with this id.
    pub fn get(&self, run_id: &str) -> Option<Arc<Run>> {
        self.inner.lock().runs.get(run_id).cloned()
    }

    /// Every run in memory: the active one and the remembered finished ones.
    pub fn all(&self) -> Vec<Arc<Run>> {
        self.inner.lock().runs.values().cloned().collect()
    }

    /// The run that is running now, if any (not one still being started).
    pub fn active(&self) -> Option<Arc<Run>> {
        let inner = self.inner.lock();
        inner
            .active
            .as_ref()
            .and_then(|id| inner.runs.get(id))
            .cloned()
    }

    /// Frees the active slot and remembers the run as finished, forgetting
    /// the oldest finished runs beyond the limit.
    pub fn finish(&self, run_id: &str) {
        let mut inner = self.inner.lock();
        if inner.active.as_deref() == Some(run_id) {
            inner.active = None;
        }
        inner.finished.push_back(run_id.to_owned());
        while inner.finished.len() > KEEP_FINISHED {
            if let Some(old) = inner.finished.pop_front() {
                inner.runs.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_active_run_at_a_time() {
        let runs = Runs::default();
        runs.reserve("a").unwrap();
        assert!(matches!(
            runs.reserve("b"),
            Err(ControllerError::RunActive(id)) if id == "a"
        ));
        runs.unreserve("b");
        assert!(runs.reserve("b").is_err());
        runs.unreserve("a");
        runs.reserve("b").unwrap();
        runs.finish("b");
        runs.reserve("c").unwrap();
    }

    #[test]
    fn forgets_old_finished_runs() {
        let runs = Runs::default();
        for i in 0..(KEEP_FINISHED + 3) {
            let id = format!("r{i}");
            let (run, _) = Run::new(id.clone(), 1, 0.0, 0);
            runs.insert(run);
            runs.finish(&id);
        }
        assert!(runs.get("r0").is_none());
        assert!(runs.get("r2").is_none());
        assert!(runs.get("r3").is_some());
        assert!(runs.get(&format!("r{}", KEEP_FINISHED + 2)).is_some());
    }
}
