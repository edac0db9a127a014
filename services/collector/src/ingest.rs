//! Group commit: every `PushDeltas` of every worker goes through one queue,
//! and whatever has queued up while the previous transaction committed is
//! applied in the next one ([`Store::apply_batch`]). A fleet of workers
//! writing the same (run, second, endpoint) rows thus takes one row lock
//! and one commit per batch instead of one per delta, and the collector
//! never waits on itself. No delta waits for a timer: under light load a
//! batch is one push, as before. A delta is acknowledged only after the
//! transaction holding it committed.
//!
//! A batch whose transaction fails (a database error, or a delta that
//! breaks it, such as an endpoint outside the run's table) is applied again
//! delta by delta, so one bad delta fails alone and every other one gets
//! its own answer.

use std::sync::Arc;

use cicada_store::{ApplyOutcome, Delta, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Most deltas in one transaction (a batch of them all arriving together
/// is split).
const MAX_BATCH: usize = 2_000;
/// Pushes waiting for the writer before a push waits to be queued.
const QUEUE: usize = 4_096;

/// What each delta of a push came to.
pub(crate) type Outcomes = Vec<Result<ApplyOutcome, StoreError>>;

struct Job {
    deltas: Vec<Delta>,
    /// The deltas handed back with their outcomes.
    done: oneshot::Sender<(Vec<Delta>, Outcomes)>,
}

/// The writer's queue.
#[derive(Clone)]
pub(crate) struct Ingest {
    jobs: mpsc::Sender<Job>,
    metrics: Metrics,
}

impl Ingest {
    /// Starts the writer of `store` (on the current runtime).
    pub(crate) fn start(store: Arc<dyn Store>, metrics: Metrics) -> Ingest {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, queue, metrics.clone()));
        Ingest { jobs, metrics }
    }

    /// Applies `deltas` in order (with whatever else is queued); hands them
    /// back with one outcome each. `None` when the writer is gone (the
    /// collector stops).
    pub(crate) async fn apply(&self, deltas: Vec<Delta>) -> Option<(Vec<Delta>, Outcomes)> {
        let (done, outcome) = oneshot::channel();
        let count = deltas.len() as i64;
        self.metrics.queue_depth.inc_by(count);
        if self.jobs.send(Job { deltas, done }).await.is_err() {
            self.metrics.queue_depth.dec_by(count);
            return None;
        }
        outcome.await.ok()
    }
}

/// A failed write worth counting as a database error (not a refused delta).
fn is_database_error(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(_))
}

async fn write(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>, metrics: Metrics) {
    while let Some(first) = queue.recv().await {
        let mut count = first.deltas.len();
        let mut jobs = vec![first];
        while count < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => {
                    count += job.deltas.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let sizes: Vec<usize> = jobs.iter().map(|job| job.deltas.len()).collect();
        let deltas: Vec<Delta> = jobs
            .iter_mut()
            .flat_map(|job| std::mem::take(&mut job.deltas))
            .collect();
        metrics.queue_depth.dec_by(deltas.len() as i64);
        let started = std::time::Instant::now();
        let batch = store.apply_batch(&deltas).await;
        metrics.db_write_took(started.elapsed());
        let outcomes = match batch {
            Ok(outcomes) => outcomes,
            Err(error) => {
                if is_database_error(&error) {
                    metrics.db_write_errors.inc();
                }
                tracing::debug!(%error, deltas = deltas.len(), "batch failed; applying its deltas one by one");
                let mut outcomes = Vec::with_capacity(deltas.len());
                for delta in &deltas {
                    let started = std::time::Instant::now();
                    let outcome = store.apply_delta(delta).await;
                    metrics.db_write_took(started.elapsed());
                    if outcome.as_ref().is_err_and(is_database_error) {
                        metrics.db_write_errors.inc();
                    }
                    outcomes.push(outcome);
                }
                outcomes
            }
        };
        let mut outcomes = outcomes.into_iter();
        let mut deltas = deltas.into_iter();
        for (job, size) in jobs.into_iter().zip(sizes) {
            let mine: Outcomes = outcomes.by_ref().take(size).collect();
            let back: Vec<Delta> = deltas.by_ref().take(size).collect();
            // A push whose caller went away: its deltas are applied anyway
            // (the worker re-sends them and they come back as duplicates).
            let _ = job.done.send((back, mine));
        }
    }
}
