//! The simulated workers as a group: starting them, following their events
//! and stopping them, every wait bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::check::Received;
use crate::sim::{Event, Sim};

/// Concurrent dials while the fleet connects.
const DIAL_CONCURRENCY: usize = 64;
/// How long the simulated workers may take to end their sessions.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// N simulated workers and what they reported so far.
pub struct Fleet {
    cores: Vec<u32>,
    events: mpsc::UnboundedReceiver<Event>,
    heartbeats: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    pub registered: usize,
    pub failed: Vec<String>,
    /// `StartWork` per worker index (the last one received).
    pub started: Vec<Option<(String, Vec<u32>)>>,
    pub started_count: usize,
    pub last_started_at: Option<Instant>,
    pub stopped_count: usize,
    pub last_stopped_at: Option<Instant>,
}

impl Fleet {
    /// Starts one simulated worker per entry of `cores` (they dial at once,
    /// `DIAL_CONCURRENCY` at a time).
    pub fn start(controller_url: &str, cores: Vec<u32>) -> Fleet {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let heartbeats = Arc::new(AtomicU64::new(0));
        let url: Arc<str> = controller_url.into();
        let permits = Arc::new(Semaphore::new(DIAL_CONCURRENCY));
        let mut tasks = JoinSet::new();
        for (index, &worker_cores) in cores.iter().enumerate() {
            let sim = Sim {
                index,
                cores: worker_cores,
                controller_url: url.clone(),
                dial_permits: permits.clone(),
                events: events_tx.clone(),
                heartbeats: heartbeats.clone(),
            };
            tasks.spawn(sim.run(stop_rx.clone()));
        }
        Fleet {
            started: vec![None; cores.len()],
            cores,
            events,
            heartbeats,
            stop,
            tasks,
            registered: 0,
            failed: Vec::new(),
            started_count: 0,
            last_started_at: None,
            stopped_count: 0,
            last_stopped_at: None,
        }
    }

    pub fn len(&self) -> usize {
        self.cores.len()
    }

    /// Heartbeats sent so far by all workers.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    /// Takes in events until `done(self)` holds (true) or `deadline` passes
    /// (false). Fails as soon as a worker's session fails: the numbers would
    /// no longer be about N workers.
    pub async fn until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Fleet) -> bool,
    ) -> anyhow::Result<bool> {
        loop {
            if let Some(error) = self.failed.first() {
                bail!(
                    "{} simulated worker(s) failed; first: {error}",
                    self.failed.len()
                );
            }
            if done(self) {
                return Ok(true);
            }
            let event = tokio::time::timeout_at(deadline.into(), self.events.recv()).await;
            match event {
                Ok(Some(event)) => self.absorb(event),
                Ok(None) => bail!("every simulated worker is gone"),
                Err(_) => return Ok(false),
            }
        }
    }

    /// Takes in events (without a condition) until `deadline`.
    pub async fn idle_until(&mut self, deadline: Instant) -> anyhow::Result<()> {
        self.until(deadline, |_| false).await.map(|_| ())
    }

    fn absorb(&mut self, event: Event) {
        match event {
            Event::Registered => self.registered += 1,
            Event::Started {
                index,
                run_id,
                class_users,
                at,
            } => {
                if self.started[index].replace((run_id, class_users)).is_none() {
                    self.started_count += 1;
                }
                self.last_started_at = Some(at);
            }
            Event::Stopped { at } => {
                self.stopped_count += 1;
                self.last_stopped_at = Some(at);
            }
            Event::Failed { index, error } => self.failed.push(format!("sim-{index:05}: {error}")),
        }
    }

    /// What each worker that got a `StartWork` for `run_id` received.
    pub fn received(&self, run_id: &str) -> Vec<Received> {
        self.started
            .iter()
            .zip(&self.cores)
            .filter_map(|(started, &cores)| match started {
                Some((id, class_users)) if id == run_id => Some(Received {
                    cores,
                    class_users: class_users.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Ends every session (bounded; stragglers are aborted).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("simulated workers did not stop in time; aborting them");
            self.tasks.abort_all();
        }
    }
}
