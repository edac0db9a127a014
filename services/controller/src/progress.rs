//! `WatchRun`: a progress message about once a second while the run lives,
//! then one last message with the final state and statistics.

use std::sync::Arc;

use cicada_proto::v1::{GetRunStatsRequest, RunDelivery, RunProgress, RunStats};
use tokio::sync::mpsc;
use tonic::Status;

use crate::Shared;
use crate::runs::{Run, RunStatus};

/// Builds one progress message; `delivery` is filled in while the run lives.
pub fn progress(
    run: &Run,
    status: &RunStatus,
    active_users: u32,
    stats: Option<RunStats>,
    delivery: Option<RunDelivery>,
) -> RunProgress {
    RunProgress {
        run_id: run.id.clone(),
        state: status.state as i32,
        target_users: status.target_users,
        active_users,
        workers: status.workers,
        stats,
        error: status.error.clone(),
        diagnoses: status.diagnoses.clone(),
        target_rate: status.target_rate,
        threshold_aborted: status.threshold_aborted,
        stop_reason: status.stop_reason.clone(),
        delivery,
    }
}

/// Streams `run`'s progress into `tx` until the run ends, the watcher goes
/// away or the controller shuts down.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    run: Arc<Run>,
    tx: mpsc::Sender<Result<RunProgress, Status>>,
) {
    let mut status_rx = run.status.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let period = shared.config.progress_interval;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let status = status_rx.borrow_and_update().clone();
        if status.is_terminal() {
            let last = progress(&run, &status, 0, status.final_stats.clone(), None);
            let _ = tx.send(Ok(last)).await;
            return;
        }
        // Live stats are best effort: without the collector the watcher still
        // sees state and users.
        let mut collector = shared.collector.clone();
        let request = GetRunStatsRequest {
            run_id: run.id.clone(),
        };
        let mut delivery = shared.registry.delivery(&run.id);
        delivery.lost_workers.clone_from(&status.lost_workers);
        let stats = match tokio::time::timeout(
            shared.config.progress_interval,
            collector.get_run_stats(request),
        )
        .await
        {
            Ok(Ok(response)) => Some(response.into_inner()),
            Ok(Err(status)) => {
                tracing::debug!(run_id = %run.id, %status, "live stats unavailable");
                delivery.controller_error = format!("{}: {}", status.code(), status.message());
                None
            }
            Err(_) => {
                delivery.controller_error = "the collector did not answer in time".to_owned();
                None
            }
        };
        let active = shared.registry.active_users(&run.id);
        if tx
            .send(Ok(progress(&run, &status, active, stats, Some(delivery))))
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            changed = status_rx.changed() => if changed.is_err() { return },
            () = crate::shut_down(&mut shutdown) => {
                let _ = tx.send(Err(Status::unavailable("controller is shutting down"))).await;
                return;
            }
        }
    }
}
