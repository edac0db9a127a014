//! After a restart: the runs a previous controller left running are ended,
//! never left "running" in the store forever.
//!
//! The controller keeps no run state on disk, so it does not resume a run:
//! it waits for the workers to reconnect (they redial with backoff), asks the
//! collector which runs are still running, stops the work the workers still
//! do for them (each flushes its deltas and answers `WorkDone` with its last
//! seq, as at any stop) and finishes each run as FAILED with "controller
//! restarted during the run", through the same stop path as any run. Every
//! delta that reached the collector is counted; nothing is counted twice.
//!
//! One controller per collector: runs of another controller on the same
//! collector would be ended too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cicada_proto::v1::{ListRunsRequest, RunState, StartWork};

use crate::Shared;
use crate::lifecycle::{self, StopPolicy};
use crate::membership::Membership;
use crate::placing::Placing;
use crate::runs::Run;
use crate::split::Placement;

/// Why an adopted run failed.
pub const RESTARTED: &str = "controller restarted during the run";

/// Attempts to reach the collector before giving up on recovery.
const LIST_ATTEMPTS: u32 = 12;

/// Waits for the workers to come back, then ends every orphaned run.
pub(crate) async fn recover(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(shared.config.recovery_settle) => {}
        () = crate::shut_down(&mut shutdown) => return,
    }
    if let Some(running) = running_runs(&shared).await {
        for run_id in running {
            // A run this controller started while the workers came back.
            if shared.runs.get(&run_id).is_some() {
                continue;
            }
            adopt(&shared, run_id);
        }
    }
    shared.recovered.store(true, Ordering::Relaxed);
}

/// The runs the collector lists as running (bounded retries).
async fn running_runs(shared: &Shared) -> Option<Vec<String>> {
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=LIST_ATTEMPTS {
        let mut collector = shared.collector.clone();
        let request = ListRunsRequest {
            limit: 1000,
            state: RunState::Running as i32,
            ..ListRunsRequest::default()
        };
        match tokio::time::timeout(
            shared.config.collector_timeout,
            collector.list_runs(request),
        )
        .await
        {
            Ok(Ok(response)) => {
                let runs: Vec<String> = response
                    .into_inner()
                    .runs
                    .into_iter()
                    .map(|run| run.run_id)
                    .collect();
                return Some(runs);
            }
            Ok(Err(status)) => {
                tracing::warn!(attempt, %status, "cannot list running runs for recovery");
            }
            Err(_) => tracing::warn!(attempt, "listing running runs timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    tracing::error!("gave up recovering orphaned runs: the collector did not answer");
    None
}

/// Stops and finishes one orphaned run with the workers still reporting it.
fn adopt(shared: &Arc<Shared>, run_id: String) {
    let workers = shared.registry.reporting(&run_id);
    tracing::warn!(run_id = %run_id, workers = workers.len(), "ending a run left running by a previous controller");
    let nobody = Placement {
        class_users: Vec::new(),
        users: 0,
        user_id_offset: 0,
    };
    let membership = Membership::new(
        Vec::new(),
        0,
        0.0,
        workers
            .iter()
            .map(|(worker_id, cores)| (worker_id.as_str(), cores.max(&1) * 100, &nobody)),
    );
    let (run, events) = Run::new(run_id, 0, 0.0, workers.len() as u32);
    shared.runs.insert(run.clone());
    let policy = StopPolicy {
        run_time: Some(Duration::ZERO),
        grace: shared.config.default_stop_grace,
        shape: None,
        failure: Some(RESTARTED.to_owned()),
        abort_on_fail: false,
        goals: Default::default(),
    };
    let placing = Placing {
        membership,
        template: StartWork::default(),
    };
    tokio::spawn(lifecycle::drive(
        shared.clone(),
        run,
        events,
        policy,
        placing,
    ));
}
