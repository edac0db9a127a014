//! What the worker process holds across controller connections: the work in
//! progress, the current controller stream and a `WorkDone` that could not
//! be delivered yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cicada_proto::v1::worker_message::Msg;
use cicada_proto::v1::{ChangeWork, Heartbeat, StartWork, StopWork, WorkDone, WorkerMessage};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::WorkerConfig;
use crate::engine::{Engine, Load};
use crate::pump::Delivery;
use crate::work;

/// The work in progress.
struct Current {
    run_id: String,
    /// `Some(grace)` once a stop was asked for.
    stop: watch::Sender<Option<Duration>>,
    /// Set once the engine has started.
    engine: Option<Arc<Engine>>,
    /// A `ChangeWork` that arrived before the engine started.
    pending_change: Option<ChangeWork>,
    /// The run's delta delivery and source id, once the pump started.
    delivery: Option<(Delivery, String)>,
    task: Option<JoinHandle<()>>,
}

/// Shared worker state.
pub(crate) struct Node {
    pub(crate) config: WorkerConfig,
    current: Mutex<Option<Current>>,
    /// The stream to the controller, while connected.
    outbound: Mutex<Option<mpsc::Sender<WorkerMessage>>>,
    /// A `WorkDone` sent while disconnected, for the next connection.
    undelivered: Mutex<Option<WorkDone>>,
    /// The last `WorkDone`, repeated if the controller asks to stop that run again.
    last_done: Mutex<Option<WorkDone>>,
    /// Requests (alone, `Engine::requests`) completed by the runs that have ended here (changed under
    /// the `current` lock, so `/metrics` never sees the total go back).
    requests_before: AtomicU64,
}

/// What `/metrics` reads of the worker ([`Node::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Requests completed since the process started (without the rows of
    /// groups, new connections and TLS handshakes).
    pub(crate) requests: u64,
    pub(crate) in_flight: u64,
    pub(crate) active_users: u32,
    /// Deltas (and their bytes) waiting for the collector's acknowledgement.
    pub(crate) buffered_deltas: u64,
    pub(crate) buffered_bytes: u64,
    /// A run is in progress.
    pub(crate) busy: bool,
}

impl Node {
    pub(crate) fn new(config: WorkerConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            current: Mutex::new(None),
            outbound: Mutex::new(None),
            undelivered: Mutex::new(None),
            last_done: Mutex::new(None),
            requests_before: AtomicU64::new(0),
        })
    }

    /// The worker's numbers now, for `/metrics`.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let current = self.current.lock();
        let before = self.requests_before.load(Ordering::Relaxed);
        let Some(current) = current.as_ref() else {
            return Snapshot {
                requests: before,
                ..Snapshot::default()
            };
        };
        let engine = current.engine.as_ref();
        let (buffered_deltas, buffered_bytes) = current
            .delivery
            .as_ref()
            .map_or((0, 0), |(delivery, _)| delivery.buffered());
        Snapshot {
            requests: before + engine.map_or(0, |e| e.requests()),
            in_flight: engine.map_or(0, |e| e.in_flight()),
            active_users: engine.map_or(0, |e| e.active_users()),
            buffered_deltas,
            buffered_bytes,
            busy: true,
        }
    }

    /// Sets (or clears) the controller stream; a pending `WorkDone` goes out
    /// on a new one.
    pub(crate) fn set_outbound(&self, tx: Option<mpsc::Sender<WorkerMessage>>) {
        let undelivered = self.undelivered.lock().take();
        *self.outbound.lock() = tx;
        if let Some(done) = undelivered {
            self.report(done);
        }
    }

    /// Sends a message to the controller if connected; false otherwise.
    fn send(&self, msg: Msg) -> bool {
        let tx = self.outbound.lock().clone();
        tx.is_some_and(|tx| tx.try_send(WorkerMessage { msg: Some(msg) }).is_ok())
    }

    /// Delivers `done` now or on the next connection.
    fn report(&self, done: WorkDone) {
        if !self.send(Msg::WorkDone(done.clone())) {
            *self.undelivered.lock() = Some(done);
        }
    }

    /// The heartbeat for the current state.
    pub(crate) fn heartbeat(&self, cpu_percent: f64, rss_bytes: u64) -> Heartbeat {
        let current = self.current.lock();
        let (run_id, engine, delivery) = match current.as_ref() {
            Some(current) => (
                current.run_id.clone(),
                current.engine.clone(),
                current.delivery.clone(),
            ),
            None => (String::new(), None, None),
        };
        drop(current);
        let (delivery, delta_source) = match delivery {
            Some((delivery, source)) => (Some(delivery.state()), source),
            None => (None, String::new()),
        };
        Heartbeat {
            run_id,
            active_users: engine.as_ref().map_or(0, |e| e.active_users()),
            in_flight: engine.as_ref().map_or(0, |e| e.in_flight()),
            cpu_percent,
            rss_bytes,
            requests: engine.as_ref().map_or(0, |e| e.completed()),
            request_rows: engine.as_ref().map_or(0, |e| e.requests()),
            delta_source,
            sent_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            delivery,
        }
    }

    /// Records the delivery of the work in progress (for heartbeats).
    pub(crate) fn set_delivery(&self, run_id: &str, delivery: Delivery, delta_source: &str) {
        if let Some(current) = self.current.lock().as_mut()
            && current.run_id == run_id
        {
            current.delivery = Some((delivery, delta_source.to_owned()));
        }
    }

    /// Sends a heartbeat; false when the stream is gone.
    pub(crate) fn send_heartbeat(&self, heartbeat: Heartbeat) -> bool {
        self.send(Msg::Heartbeat(heartbeat))
    }

    /// Starts the work unless another run is in progress.
    pub(crate) fn start_work(self: &Arc<Self>, start: StartWork) {
        let mut current = self.current.lock();
        if let Some(busy) = current.as_ref() {
            if busy.run_id != start.run_id {
                let error = format!("worker is busy with run {}", busy.run_id);
                drop(current);
                self.report(WorkDone {
                    run_id: start.run_id,
                    error,
                    ..WorkDone::default()
                });
            }
            return;
        }
        let (stop, stop_rx) = watch::channel(None);
        let run_id = start.run_id.clone();
        let node = self.clone();
        // Every line the work logs carries its run.
        let span = tracing::info_span!("work", run_id = %run_id);
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let done = work::execute(node.clone(), start, stop_rx).await;
                node.work_finished(done);
            },
            span,
        ));
        *current = Some(Current {
            run_id,
            stop,
            engine: None,
            pending_change: None,
            delivery: None,
            task: Some(task),
        });
    }

    /// Records the engine of the work in progress (for heartbeats and
    /// changes), applying a change that arrived while it was starting.
    pub(crate) fn set_engine(&self, run_id: &str, engine: Arc<Engine>) {
        if let Some(current) = self.current.lock().as_mut()
            && current.run_id == run_id
        {
            if let Some(change) = current.pending_change.take() {
                retarget(&engine, change);
            }
            current.engine = Some(engine);
        }
    }

    /// Moves the work in progress to a new share; a change for another run
    /// is ignored (that run has ended here).
    pub(crate) fn change_work(&self, change: ChangeWork) {
        let mut current = self.current.lock();
        match current.as_mut() {
            Some(current) if current.run_id == change.run_id => match &current.engine {
                Some(engine) => retarget(engine, change),
                None => current.pending_change = Some(change),
            },
            _ => tracing::info!(run_id = %change.run_id, "ChangeWork for a run not running here"),
        }
    }

    fn work_finished(&self, done: WorkDone) {
        // Idle before reporting, so the controller never sees a heartbeat
        // naming a run it was already told is done.
        {
            let mut current = self.current.lock();
            if let Some(ended) = current.as_ref().filter(|c| c.run_id == done.run_id) {
                if let Some(engine) = &ended.engine {
                    self.requests_before
                        .fetch_add(engine.requests(), Ordering::Relaxed);
                }
                *current = None;
            }
        }
        *self.last_done.lock() = Some(done.clone());
        self.report(done);
    }

    /// Asks the work of `stop.run_id` to stop. A stop for the run that just
    /// ended repeats its `WorkDone`; a stop for an unknown run is answered at
    /// once so the controller does not wait for it.
    pub(crate) fn stop_work(&self, stop: StopWork) {
        let grace = Duration::from_millis(stop.grace_ms);
        if let Some(current) = self.current.lock().as_ref()
            && current.run_id == stop.run_id
        {
            current.stop.send_replace(Some(grace));
            return;
        }
        let last = self.last_done.lock().clone();
        match last {
            Some(done) if done.run_id == stop.run_id => self.report(done),
            _ => self.report(WorkDone {
                run_id: stop.run_id.clone(),
                error: format!("worker is not running run {}", stop.run_id),
                ..WorkDone::default()
            }),
        }
    }

    /// Stops the work in progress (if any) and waits for it to report, at
    /// most `timeout`.
    pub(crate) async fn stop_current(&self, grace: Duration, timeout: Duration) {
        let task = {
            let mut current = self.current.lock();
            match current.as_mut() {
                Some(current) => {
                    current.stop.send_replace(Some(grace));
                    current.task.take()
                }
                None => None,
            }
        };
        if let Some(task) = task
            && tokio::time::timeout(timeout, task).await.is_err()
        {
            tracing::warn!("work did not finish in time at shutdown");
        }
    }
}

/// Applies a new share: a new rate in the open model (the in-flight bound
/// stays what the work started with), new users in the closed model.
fn retarget(engine: &Engine, change: ChangeWork) {
    let users: u32 = change.class_users.iter().sum();
    engine.set_connection_rate(change.connection_rate);
    let result = if engine.is_open() {
        engine.set_rate(change.rate)
    } else {
        engine.retarget(Load {
            class_users: change.class_users,
            spawn_rate: change.spawn_rate,
            user_id_offset: change.user_id_offset,
            ..Load::default()
        })
    };
    match result {
        Ok(()) => {
            tracing::info!(run_id = %change.run_id, users, rate = change.rate, "work changed")
        }
        Err(error) => tracing::warn!(run_id = %change.run_id, %error, "cannot apply ChangeWork"),
    }
}
