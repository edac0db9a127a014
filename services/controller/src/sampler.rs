//! Samples a running run once a second (merged totals from the collector,
//! worker CPU from heartbeats) and keeps its diagnosis current.

use std::sync::Arc;
use std::time::Duration;

use cicada_proto::v1::{GetRunStatsRequest, RunStats};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::Shared;
use crate::diagnosis::{self, Goals, Sample};
use crate::runs::Run;

const PERIOD: Duration = Duration::from_secs(1);

/// The samples of a run so far; only the most recent keep per-worker loads.
#[derive(Debug, Default)]
pub struct History {
    samples: Vec<Sample>,
    goals: Goals,
}

/// Per-worker loads kept for this many recent samples.
const KEEP_LOADS: usize = 8;

impl History {
    pub fn new(goals: Goals) -> Self {
        Self {
            samples: Vec::new(),
            goals,
        }
    }

    /// Adds a sample; older samples drop their per-worker loads so a long
    /// run with many workers stays small.
    pub fn push(&mut self, sample: Sample) {
        self.samples.push(sample);
        if let Some(old) = self.samples.len().checked_sub(KEEP_LOADS + 1) {
            self.samples[old].workers = Vec::new();
        }
    }

    /// The findings for the samples so far and the latest failure kinds.
    pub fn diagnose(&self, stats: Option<&RunStats>) -> Vec<cicada_proto::v1::Diagnosis> {
        let failures = stats.map_or(&[][..], |stats| stats.failures.as_slice());
        diagnosis::diagnose(&self.samples, failures, self.goals)
    }
}

/// Samples `run` until `stop` fires; returns what it saw.
pub(crate) async fn sample(
    shared: Arc<Shared>,
    run: Arc<Run>,
    mut history: History,
    mut stop: oneshot::Receiver<()>,
) -> History {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = &mut stop => return history,
        }
        let mut collector = shared.collector.clone();
        let request = GetRunStatsRequest {
            run_id: run.id.clone(),
        };
        let stats = match tokio::time::timeout(PERIOD, collector.get_run_stats(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            // No totals this second: skip the sample rather than guess.
            _ => continue,
        };
        let total = stats.total.clone().unwrap_or_default();
        let target_users = run.status.borrow().target_users;
        history.push(Sample {
            elapsed_s: started.elapsed().as_secs_f64(),
            target_users,
            active_users: shared.registry.active_users(&run.id),
            requests: total.requests,
            failures: total.failures,
            dropped: stats.dropped,
            workers: shared.registry.loads(&run.id),
        });
        let diagnoses = history.diagnose(Some(&stats));
        run.status.send_if_modified(|status| {
            let changed = status.diagnoses != diagnoses;
            if changed {
                status.diagnoses = diagnoses;
            }
            changed
        });
    }
}
