//! The delta pump of one run: the run's task hands it one interval per
//! second; a sender task pushes every pending delta to the collector, oldest
//! first, and drops them only once acknowledged. A failed push keeps them and
//! is retried with backoff, so the cut cadence never waits for the network.

use std::sync::Arc;
use std::time::Duration;

use cicada_histogram::Counts;
use cicada_proto::auth::AuthChannel;
use cicada_proto::v1::PushDeltasRequest;
use cicada_proto::v1::collector_client::CollectorClient;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::delta::{DeltaBuilder, Pending};
use crate::engine::Interval;

/// Deltas per `PushDeltas` request.
const MAX_BATCH: usize = 64;
/// Encoded bytes per request, well under the 4 MiB gRPC default.
const MAX_BATCH_BYTES: usize = 2 << 20;
/// Per-request timeout.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A run's deltas on their way to the collector.
pub struct Pump {
    builder: DeltaBuilder,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    acked: watch::Receiver<u64>,
    sender: JoinHandle<()>,
}

impl Pump {
    /// Starts the sender task for `run_id`.
    pub fn start(collector: CollectorClient<AuthChannel>, run_id: &str, worker_id: &str) -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let wake = Arc::new(Notify::new());
        let (acked_tx, acked) = watch::channel(0);
        let sender = tokio::spawn(send_loop(
            collector,
            pending.clone(),
            wake.clone(),
            acked_tx,
        ));
        Self {
            builder: DeltaBuilder::new(run_id, worker_id),
            pending,
            wake,
            acked,
            sender,
        }
    }

    /// Queues the delta of the interval that started at unix `second`.
    pub fn record(&mut self, second: i64, interval: &Interval, active_users: u32) {
        let delta = self.builder.build(second, interval, active_users);
        self.pending.lock().push(delta);
        self.wake.notify_one();
    }

    /// Seq of the last delta queued.
    pub fn last_seq(&self) -> u64 {
        self.builder.last_seq()
    }

    /// Everything recorded in this run.
    pub fn totals(&self) -> Counts {
        self.builder.totals()
    }

    /// Waits until every queued delta is acknowledged, at most `timeout`,
    /// then stops the sender. Returns the number of deltas never acknowledged.
    pub async fn finish(mut self, timeout: Duration) -> usize {
        let last = self.builder.last_seq();
        self.wake.notify_one();
        let _ = tokio::time::timeout(timeout, self.acked.wait_for(|&acked| acked >= last)).await;
        self.sender.abort();
        self.pending.lock().len()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

async fn send_loop(
    mut collector: CollectorClient<AuthChannel>,
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    acked: watch::Sender<u64>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        wake.notified().await;
        loop {
            let batch = pending.lock().batch(MAX_BATCH, MAX_BATCH_BYTES);
            let Some(last) = batch.last().map(|delta| delta.seq) else {
                break;
            };
            let request = PushDeltasRequest { deltas: batch };
            match tokio::time::timeout(PUSH_TIMEOUT, collector.push_deltas(request)).await {
                Ok(Ok(_)) => {
                    pending.lock().ack_through(last);
                    acked.send_replace(last);
                    backoff.reset();
                }
                Ok(Err(status)) => {
                    tracing::warn!(%status, last_seq = last, "failed to push deltas; will retry");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(_) => {
                    tracing::warn!(last_seq = last, "pushing deltas timed out; will retry");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}
