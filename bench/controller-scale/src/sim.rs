//! Simulated workers: the `WorkerSession` protocol as `cicada-worker` speaks
//! it (its own HTTP/2 connection with the same keep-alive settings,
//! `Register`, a heartbeat every interval the controller announces,
//! `WorkDone` on `StopWork`), without the load engine: they send no HTTP
//! requests and push no deltas, so thousands fit in one process and the
//! controller sees exactly the traffic thousands of idle or running workers
//! cause.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::controller_message::Msg as In;
use cicada_proto::v1::worker_message::Msg as Out;
use cicada_proto::v1::{Heartbeat, Register, WorkDone, WorkerMessage};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// What the simulated workers tell the benchmark.
#[derive(Debug)]
pub enum Event {
    /// The controller answered `Registered`.
    Registered,
    /// A `StartWork` arrived.
    Started {
        index: usize,
        run_id: String,
        class_users: Vec<u32>,
        at: Instant,
    },
    /// A `StopWork` arrived (and `WorkDone` was queued).
    Stopped { at: Instant },
    /// The session failed; the worker is gone.
    Failed { index: usize, error: String },
}

/// One simulated worker.
#[derive(Debug, Clone)]
pub struct Sim {
    pub index: usize,
    pub cores: u32,
    pub controller_url: Arc<str>,
    /// Bounds concurrent dials: thousands of simultaneous SYNs overflow the
    /// listen backlog and turn into 1 s retransmits, which would measure
    /// the kernel, not the controller.
    pub dial_permits: Arc<Semaphore>,
    pub events: mpsc::UnboundedSender<Event>,
    /// Heartbeats handed to the connection, across all workers.
    pub heartbeats: Arc<AtomicU64>,
}

impl Sim {
    /// Worker id: unique, sorts like the index.
    pub fn id(&self) -> String {
        format!("sim-{:05}", self.index)
    }

    /// Runs the session until `stop` turns true; reports a failure as an event.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        if let Err(error) = self.session(stop).await {
            let _ = self.events.send(Event::Failed {
                index: self.index,
                error: format!("{error:#}"),
            });
        }
    }

    async fn session(&self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let (tx, mut inbound, heartbeat_every) = {
            let _permit = self.dial_permits.acquire().await?;
            self.register().await?
        };
        let _ = self.events.send(Event::Registered);
        // Like cicada-worker: first heartbeat at once, then every interval.
        let mut ticker = tokio::time::interval(heartbeat_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The run this worker executes and its users (reported as active).
        let mut current: Option<(String, u32)> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let (run_id, active_users) = current.clone().unwrap_or_default();
                    let heartbeat = Heartbeat {
                        run_id,
                        active_users,
                        in_flight: 0,
                        cpu_percent: 1.0,
                        rss_bytes: 16 << 20,
                        requests: 0, ..Default::default() };
                    if tx.try_send(message(Out::Heartbeat(heartbeat))).is_ok() {
                        self.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                }
                received = inbound.message() => match received.context("controller stream failed")?.and_then(|m| m.msg) {
                    Some(In::StartWork(start)) => {
                        let users = start.class_users.iter().sum();
                        current = Some((start.run_id.clone(), users));
                        let _ = self.events.send(Event::Started {
                            index: self.index,
                            run_id: start.run_id,
                            class_users: start.class_users,
                            at: Instant::now(),
                        });
                    }
                    Some(In::StopWork(stop)) => {
                        let _ = self.events.send(Event::Stopped { at: Instant::now() });
                        current = None;
                        let done = WorkDone { run_id: stop.run_id, ..Default::default() };
                        tx.send(message(Out::WorkDone(done))).await.context("failed to send WorkDone")?;
                    }
                    Some(In::ChangeWork(change)) => {
                        // A rebalance (no worker joins or leaves in this
                        // benchmark, but a real controller may send one).
                        if let Some((run_id, users)) = current.as_mut()
                            && *run_id == change.run_id
                        {
                            *users = change.class_users.iter().sum();
                        }
                    }
                    Some(In::Registered(_)) | None => {}
                },
                // Drop the watch guard in the branch: it must not live across
                // the awaits of the other branches.
                () = async { let _ = stop.wait_for(|&stop| stop).await; } => return Ok(()),
            }
        }
    }

    /// Dials, sends `Register` and waits for `Registered`.
    async fn register(
        &self,
    ) -> anyhow::Result<(
        mpsc::Sender<WorkerMessage>,
        tonic::Streaming<cicada_proto::v1::ControllerMessage>,
        Duration,
    )> {
        // One connection per worker, configured like cicada-worker's.
        let channel = Endpoint::from_shared(self.controller_url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect()
            .await
            .context("failed to connect")?;
        let (tx, rx) = mpsc::channel(32);
        tx.try_send(message(Out::Register(Register {
            worker_id: self.id(),
            cores: self.cores,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: "bench-sim".to_owned(),
        })))?;
        let mut inbound = ControllerClient::new(channel)
            .worker_session(ReceiverStream::new(rx))
            .await
            .context("controller refused the session")?
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .context("no Registered within 10 s")??;
        let Some(In::Registered(registered)) = first.and_then(|m| m.msg) else {
            bail!("expected Registered first");
        };
        let every = Duration::from_millis(u64::from(registered.heartbeat_interval_ms).max(100));
        Ok((tx, inbound, every))
    }
}

fn message(msg: Out) -> WorkerMessage {
    WorkerMessage { msg: Some(msg) }
}
