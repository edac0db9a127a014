//! The delta pump of one run: the run's task hands it an interval at every
//! cut; a sender task pushes every pending delta to the collector, oldest
//! first, and drops them only once acknowledged. A failed push keeps them and
//! is retried with backoff, so the cut cadence never waits for the network.
//!
//! The queue is bounded ([`BufferLimits`]): when the collector stays
//! unreachable past the limits, the oldest deltas are evicted into a loss
//! marker that goes out first once it is reachable again, so the loss is
//! counted exactly in the stored run; it is logged as an error when it
//! happens and reported in every heartbeat (`DeliveryState`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cicada_histogram::Counts;
use cicada_proto::auth::AuthChannel;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_proto::v1::{DeliveryState, PushDeltasRequest};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::delta::{Cut, DeltaBuilder, Pending};
use crate::engine::Interval;

/// Deltas per `PushDeltas` request.
const MAX_BATCH: usize = 64;
/// Encoded bytes per request, well under the 4 MiB gRPC default.
const MAX_BATCH_BYTES: usize = 2 << 20;
/// Per-request timeout.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How much a worker keeps for a collector it cannot reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Encoded bytes of unacknowledged deltas.
    pub max_bytes: usize,
    /// Age of the oldest unacknowledged delta.
    pub max_age: Duration,
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(15 * 60),
        }
    }
}

/// Delivery counters shared by the pump, its sender and the heartbeats.
#[derive(Debug, Default)]
struct Counters {
    acked_requests: u64,
    evicted_requests: u64,
    evicted_deltas: u64,
    /// The last push error, cleared by a success.
    last_error: String,
}

/// A read-only view of a pump's delivery, for heartbeats.
#[derive(Clone)]
pub struct Delivery {
    pending: Arc<Mutex<Pending>>,
    counters: Arc<Mutex<Counters>>,
}

impl Delivery {
    /// Deltas cut but not yet acknowledged, and their encoded bytes.
    pub fn buffered(&self) -> (u64, u64) {
        let pending = self.pending.lock();
        (pending.len() as u64, pending.bytes() as u64)
    }

    /// What the heartbeat reports.
    pub fn state(&self) -> DeliveryState {
        let (pending_deltas, oldest) = {
            let pending = self.pending.lock();
            (pending.len() as u64, pending.oldest_age(Instant::now()))
        };
        let counters = self.counters.lock();
        DeliveryState {
            pending_deltas,
            oldest_pending_ms: oldest.as_millis() as u64,
            acked_requests: counters.acked_requests,
            evicted_requests: counters.evicted_requests,
            last_error: counters.last_error.clone(),
        }
    }
}

/// A run's deltas on their way to the collector.
pub struct Pump {
    builder: DeltaBuilder,
    delivery: Delivery,
    limits: BufferLimits,
    wake: Arc<Notify>,
    acked: watch::Receiver<u64>,
    sender: JoinHandle<()>,
}

impl Pump {
    /// Starts the sender task for `run_id`.
    pub fn start(
        collector: CollectorClient<AuthChannel>,
        run_id: &str,
        worker_id: &str,
        limits: BufferLimits,
    ) -> Self {
        let delivery = Delivery {
            pending: Arc::new(Mutex::new(Pending::default())),
            counters: Arc::new(Mutex::new(Counters::default())),
        };
        let wake = Arc::new(Notify::new());
        let (acked_tx, acked) = watch::channel(0);
        let sender = tokio::spawn(send_loop(
            collector,
            delivery.clone(),
            wake.clone(),
            acked_tx,
        ));
        Self {
            builder: DeltaBuilder::new(run_id, worker_id),
            delivery,
            limits,
            wake,
            acked,
            sender,
        }
    }

    /// The delivery view for heartbeats.
    pub fn delivery(&self) -> Delivery {
        self.delivery.clone()
    }

    /// Queues the delta of the interval `cut`, evicting the oldest deltas
    /// if the buffer went over its limits.
    pub fn record(&mut self, cut: &Cut, interval: &Interval) {
        let delta = self.builder.build(cut, interval);
        let now = Instant::now();
        let evicted = {
            let mut pending = self.delivery.pending.lock();
            pending.push(delta, now);
            pending.evict(self.limits.max_bytes, self.limits.max_age, now)
        };
        if evicted.deltas > 0 {
            let mut counters = self.delivery.counters.lock();
            let before = counters.evicted_deltas;
            counters.evicted_deltas += evicted.deltas as u64;
            counters.evicted_requests += evicted.requests;
            // Loud, but not once per cut: at the first and at powers of two.
            if before == 0 || counters.evicted_deltas.ilog2() > before.ilog2() {
                tracing::error!(
                    run_id = %self.builder.run_id(),
                    evicted_deltas = counters.evicted_deltas,
                    evicted_requests = counters.evicted_requests,
                    max_bytes = self.limits.max_bytes,
                    max_age_s = self.limits.max_age.as_secs(),
                    last_error = %counters.last_error,
                    "the collector has been unreachable past the delta buffer's limits: the oldest deltas were dropped; \
                     the run will report these requests as lost (raise --buffer-max-bytes / --buffer-max-age to keep more)"
                );
            }
        }
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

    /// Requests evicted from the buffer so far (lost).
    pub fn evicted_requests(&self) -> u64 {
        self.delivery.counters.lock().evicted_requests
    }

    /// Waits until every queued delta is acknowledged, at most `timeout`,
    /// then stops the sender. Returns the number of deltas never acknowledged.
    pub async fn finish(mut self, timeout: Duration) -> usize {
        let last = self.builder.last_seq();
        self.wake.notify_one();
        let _ = tokio::time::timeout(timeout, self.acked.wait_for(|&acked| acked >= last)).await;
        self.sender.abort();
        self.delivery.pending.lock().len()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

async fn send_loop(
    mut collector: CollectorClient<AuthChannel>,
    delivery: Delivery,
    wake: Arc<Notify>,
    acked: watch::Sender<u64>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        wake.notified().await;
        loop {
            let batch = delivery.pending.lock().batch(MAX_BATCH, MAX_BATCH_BYTES);
            let Some(last) = batch.last().map(|delta| delta.seq) else {
                break;
            };
            let request = PushDeltasRequest { deltas: batch };
            let error = match tokio::time::timeout(PUSH_TIMEOUT, collector.push_deltas(request))
                .await
            {
                Ok(Ok(_)) => {
                    let requests = delivery.pending.lock().ack_through(last);
                    {
                        let mut counters = delivery.counters.lock();
                        counters.acked_requests += requests;
                        counters.last_error.clear();
                    }
                    acked.send_replace(last);
                    backoff.reset();
                    continue;
                }
                Ok(Err(status)) => {
                    tracing::warn!(%status, last_seq = last, "failed to push deltas; will retry");
                    format!("{}: {}", status.code(), status.message())
                }
                Err(_) => {
                    tracing::warn!(last_seq = last, "pushing deltas timed out; will retry");
                    format!("no answer within {PUSH_TIMEOUT:?}")
                }
            };
            delivery.counters.lock().last_error = error;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
