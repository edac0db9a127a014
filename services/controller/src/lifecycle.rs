//! A run's life cycle task: wait for the run time limit (or `StopRun`), send
//! `StopWork`, collect `WorkDone` from every worker (bounded), then call the
//! collector's `FinishRun` and publish the final state.
//!
//! A worker whose stream drops before its `WorkDone` counts as done without a
//! `last_seq`: `FinishRun` does not list it, so the collector does not wait
//! for its trailing deltas. Whatever it pushed before the summary is computed
//! is still counted; deltas it pushes later (it keeps going until its own
//! safety-net stop) are lost to the summary. If it reconnects before the stop,
//! it gets `StopWork` on its new stream and is waited for again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cicada_proto::v1::controller_message::Msg;
use cicada_proto::v1::{
    ControllerMessage, FinishRunRequest, RunState, StopWork, WorkDone, WorkerFinal,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::diagnosis::Goals;
use crate::placing::{Placing, follow_shape, place, send_changes};
use crate::runs::{Run, RunEvent};
use crate::sampler::{self, History};
use crate::shape::Shape;

/// How a run's load changes over time and how it is stopped.
#[derive(Debug, Clone)]
pub struct StopPolicy {
    /// Stop this long after the start (`None`: only on `StopRun`).
    pub run_time: Option<Duration>,
    /// Grace for in-flight requests.
    pub grace: Duration,
    /// The load shape followed while running.
    pub shape: Option<Shape>,
    /// The run fails with this error whatever the workers report (a run
    /// adopted after a controller restart).
    pub failure: Option<String>,
    /// Some threshold has `abort_on_fail`: check the live results while running.
    pub abort_on_fail: bool,
    /// What the run aims at, for the diagnosis.
    pub goals: Goals,
}

/// How often a shaped run's target is recomputed.
pub(crate) const SHAPE_TICK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
enum WorkerState {
    Running,
    Gone,
    Done(WorkDone),
}

/// Which workers of a run are still at work: the pure part of the task.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    workers: BTreeMap<String, WorkerState>,
    /// `WorkDone`s of workers that later came back to the run (a restarted
    /// worker under the same id): their deltas still have to be waited for.
    earlier: Vec<(String, WorkDone)>,
}

impl Tracker {
    /// Every listed worker running.
    pub fn new<'a>(worker_ids: impl IntoIterator<Item = &'a String>) -> Self {
        let workers = worker_ids
            .into_iter()
            .map(|id| (id.clone(), WorkerState::Running))
            .collect();
        Self {
            workers,
            earlier: Vec::new(),
        }
    }

    /// Applies a worker's end (`Done`, `Gone`); other events change nothing here.
    pub fn apply(&mut self, event: RunEvent) {
        match event {
            RunEvent::Done { worker_id, done } => {
                if let Some(state) = self.workers.get_mut(&worker_id) {
                    *state = WorkerState::Done(done);
                }
            }
            RunEvent::Gone { worker_id } => {
                if let Some(state @ WorkerState::Running) = self.workers.get_mut(&worker_id) {
                    *state = WorkerState::Gone;
                }
            }
            RunEvent::Stop
            | RunEvent::Joined { .. }
            | RunEvent::Scale { .. }
            | RunEvent::ScaleRate { .. } => {}
        }
    }

    /// Takes a worker into the run (a new one, or one that came back);
    /// false when it already reported `WorkDone` for this run.
    pub fn add(&mut self, worker_id: &str) -> bool {
        match self.workers.get_mut(worker_id) {
            // It could not run the work: it would fail again.
            Some(WorkerState::Done(done)) if !done.error.is_empty() => false,
            Some(state @ WorkerState::Done(_)) => {
                if let WorkerState::Done(done) = std::mem::replace(state, WorkerState::Running) {
                    self.earlier.push((worker_id.to_owned(), done));
                }
                true
            }
            Some(state) => {
                *state = WorkerState::Running;
                true
            }
            None => {
                self.workers
                    .insert(worker_id.to_owned(), WorkerState::Running);
                true
            }
        }
    }

    /// Every worker that ever took part.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.workers.keys().map(String::as_str)
    }

    /// The worker is reachable again (a `StopWork` reached it).
    pub fn revive(&mut self, worker_id: &str) {
        if let Some(state @ WorkerState::Gone) = self.workers.get_mut(worker_id) {
            *state = WorkerState::Running;
        }
    }

    /// True when no worker is running any more.
    pub fn all_finished(&self) -> bool {
        self.workers
            .values()
            .all(|state| !matches!(state, WorkerState::Running))
    }

    /// Workers without a `WorkDone` yet (running or gone).
    pub fn not_done(&self) -> Vec<String> {
        self.workers
            .iter()
            .filter(|(_, state)| !matches!(state, WorkerState::Done(_)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Workers still running (used for the timeout warning).
    pub fn running(&self) -> Vec<String> {
        self.workers
            .iter()
            .filter(|(_, state)| matches!(state, WorkerState::Running))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// `FinishRun`'s worker list: every worker that reported `WorkDone`.
    pub fn finals(&self) -> Vec<WorkerFinal> {
        let current = self.workers.iter().filter_map(|(id, state)| match state {
            WorkerState::Done(done) => Some((id, done)),
            _ => None,
        });
        let earlier = self.earlier.iter().map(|(id, done)| (id, done));
        earlier
            .chain(current)
            .map(|(id, done)| WorkerFinal {
                worker_id: if done.delta_source.is_empty() {
                    id.clone()
                } else {
                    done.delta_source.clone()
                },
                last_seq: done.last_seq,
            })
            .collect()
    }

    /// The workers' errors, joined, if any reported one.
    pub fn error(&self) -> Option<String> {
        let errors: Vec<String> = self
            .workers
            .iter()
            .filter_map(|(id, state)| match state {
                WorkerState::Done(done) if !done.error.is_empty() => {
                    Some(format!("worker {id}: {}", done.error))
                }
                _ => None,
            })
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

/// Drives `run` from RUNNING to FINISHED or FAILED.
pub(crate) async fn drive(
    shared: Arc<Shared>,
    run: Arc<Run>,
    mut events: mpsc::UnboundedReceiver<RunEvent>,
    policy: StopPolicy,
    mut placing: Placing,
) {
    let mut tracker = Tracker::new(&placing.membership.worker_ids());
    let mut shutdown = shared.shutdown.clone();
    let mut shut_down = false;
    let started = Instant::now();
    let stop_at = policy.run_time.map(|run_time| started + run_time);
    let mut shape_tick = tokio::time::interval_at(started, SHAPE_TICK);
    let (stop_sampling, sampling_stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sampler::sample(
        shared.clone(),
        run.clone(),
        History::new(policy.goals),
        sampling_stopped,
    ));
    let mut checks = policy.abort_on_fail.then(|| {
        let period = shared.config.threshold_check_interval;
        let mut checks = tokio::time::interval_at(started + period, period);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        checks
    });
    let mut aborted: Option<String> = None;

    // Running: until the time limit, StopRun, shutdown, every worker ended
    // or an abort_on_fail threshold failed.
    loop {
        let time_limit = async {
            match stop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let check_due = async {
            match checks.as_mut() {
                Some(checks) => checks.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = time_limit => break,
            _ = check_due => {
                if let Some(reason) = crate::abort::check(&shared, &run.id, started.elapsed()).await {
                    tracing::info!(run_id = %run.id, %reason, "stopping the run");
                    aborted = Some(reason);
                    break;
                }
            }
            () = crate::shut_down(&mut shutdown) => {
                shut_down = true;
                break;
            }
            _ = shape_tick.tick(), if policy.shape.is_some() => {
                if let Some(shape) = &policy.shape {
                    let changes = follow_shape(shape, started.elapsed(), &mut placing.membership);
                    send_changes(&shared, &run, &placing.template, placing.membership.is_open(), changes);
                    run.status.send_modify(|status| {
                        status.target_users = placing.membership.users();
                        status.target_rate = placing.membership.rate();
                    });
                }
            }
            event = events.recv() => match event {
                None | Some(RunEvent::Stop) => break,
                Some(event) => {
                    let changes = place(&shared, &run, &mut tracker, &mut placing.membership, event);
                    send_changes(&shared, &run, &placing.template, placing.membership.is_open(), changes);
                    run.status.send_modify(|status| {
                        status.target_users = placing.membership.users();
                        status.target_rate = placing.membership.rate();
                        status.workers = placing.membership.len() as u32;
                    });
                    if tracker.all_finished() {
                        break;
                    }
                }
            },
        }
    }

    // Stopping: StopWork to everyone without a WorkDone, then wait (bounded).
    run.set_state(RunState::Stopping);
    let _ = stop_sampling.send(());
    tracing::info!(run_id = %run.id, "stopping run");
    let stop = ControllerMessage {
        msg: Some(Msg::StopWork(StopWork {
            run_id: run.id.clone(),
            grace_ms: policy.grace.as_millis() as u64,
        })),
    };
    for worker_id in tracker.not_done() {
        if let Some(tx) = shared.registry.sender(&worker_id)
            && tx
                .send_timeout(Ok(stop.clone()), Duration::from_secs(5))
                .await
                .is_ok()
        {
            tracker.revive(&worker_id);
        }
    }
    if !shut_down {
        let wait_until = Instant::now() + policy.grace + shared.config.work_done_margin;
        while !tracker.all_finished() {
            tokio::select! {
                () = tokio::time::sleep_until(wait_until) => {
                    tracing::warn!(run_id = %run.id, workers = ?tracker.running(), "no WorkDone before the deadline");
                    break;
                }
                event = events.recv() => match event {
                    Some(event) => tracker.apply(event),
                    None => break,
                },
            }
        }
    }

    // Finishing: let the collector wait for the last deltas and summarise.
    let mut error = policy.failure.clone().or_else(|| tracker.error());
    if shut_down && error.is_none() {
        error = Some("controller shut down during the run".to_owned());
    }
    let state = if error.is_some() {
        RunState::Failed
    } else {
        RunState::Finished
    };
    // A threshold stop is not a failure of the run: its numbers are complete.
    let threshold_aborted = aborted.is_some();
    let error = error.or(aborted);
    let request = FinishRunRequest {
        run_id: run.id.clone(),
        state: state as i32,
        ended_at_ms: unix_ms(),
        workers: tracker.finals(),
        wait_ms: shared.config.finish_wait.as_millis() as u64,
        error: error.clone().unwrap_or_default(),
        lost: Vec::new(),
    };
    let mut collector = shared.collector.clone();
    let budget = shared.config.finish_wait + shared.config.collector_timeout;
    let (state, error, stats) = match tokio::time::timeout(budget, collector.finish_run(request))
        .await
    {
        Ok(Ok(response)) => {
            let response = response.into_inner();
            if response.incomplete {
                tracing::warn!(run_id = %run.id, "collector finished the run with deltas missing");
            }
            (state, error.unwrap_or_default(), response.stats)
        }
        Ok(Err(status)) => (
            RunState::Failed,
            format!("failed to finish the run in the collector: {status}"),
            None,
        ),
        Err(_) => (
            RunState::Failed,
            "failed to finish the run in the collector: timed out".to_owned(),
            None,
        ),
    };
    let history = sampler.await.unwrap_or_default();
    let diagnoses = history.diagnose(stats.as_ref());
    shared.registry.release(&run.id, tracker.ids());
    shared.runs.finish(&run.id);
    tracing::info!(run_id = %run.id, state = ?state, error = %error, "run ended");
    run.status.send_modify(|status| {
        status.state = state;
        status.error = error;
        status.threshold_aborted = threshold_aborted;
        status.final_stats = stats;
        status.diagnoses = diagnoses;
    });
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(last_seq: u64, error: &str) -> WorkDone {
        WorkDone {
            run_id: "r".into(),
            last_seq,
            requests: 10,
            cancelled: 0,
            error: error.into(),
            ..WorkDone::default()
        }
    }

    #[test]
    fn finals_name_the_source_the_deltas_were_sent_under() {
        let ids = vec!["a".to_owned()];
        let mut tracker = Tracker::new(&ids);
        tracker.apply(RunEvent::Done {
            worker_id: "a".into(),
            done: WorkDone {
                delta_source: "a.0000beef".into(),
                ..done(4, "")
            },
        });
        let finals = tracker.finals();
        assert_eq!(finals[0].worker_id, "a.0000beef");
        assert_eq!(finals[0].last_seq, 4);

        // It comes back (restarted under the same id) and finishes again:
        // both sources are waited for.
        assert!(tracker.add("a"));
        assert!(!tracker.all_finished());
        tracker.apply(RunEvent::Done {
            worker_id: "a".into(),
            done: WorkDone {
                delta_source: "a.0000cafe".into(),
                ..done(2, "")
            },
        });
        let finals: Vec<(String, u64)> = tracker
            .finals()
            .into_iter()
            .map(|f| (f.worker_id, f.last_seq))
            .collect();
        assert_eq!(
            finals,
            [("a.0000beef".to_owned(), 4), ("a.0000cafe".to_owned(), 2)]
        );
    }

    #[test]
    fn tracker_follows_workers_to_the_end() {
        let ids = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let mut tracker = Tracker::new(&ids);
        assert!(!tracker.all_finished());
        tracker.apply(RunEvent::Done {
            worker_id: "a".into(),
            done: done(7, ""),
        });
        tracker.apply(RunEvent::Gone {
            worker_id: "b".into(),
        });
        // Unknown workers and Stop change nothing.
        tracker.apply(RunEvent::Gone {
            worker_id: "zz".into(),
        });
        tracker.apply(RunEvent::Stop);
        assert_eq!(tracker.running(), vec!["c".to_owned()]);
        assert_eq!(tracker.not_done(), vec!["b".to_owned(), "c".to_owned()]);

        // b reconnected and got StopWork: it is waited for again.
        tracker.revive("b");
        assert_eq!(tracker.running(), vec!["b".to_owned(), "c".to_owned()]);
        tracker.apply(RunEvent::Done {
            worker_id: "b".into(),
            done: done(3, ""),
        });
        tracker.apply(RunEvent::Gone {
            worker_id: "c".into(),
        });
        assert!(tracker.all_finished());
        let finals: Vec<(String, u64)> = tracker
            .finals()
            .into_iter()
            .map(|f| (f.worker_id, f.last_seq))
            .collect();
        assert_eq!(finals, vec![("a".into(), 7), ("b".into(), 3)]);
        assert_eq!(tracker.error(), None);
    }

    #[test]
    fn done_is_not_undone_by_a_dropped_stream() {
        let ids = vec!["a".to_owned()];
        let mut tracker = Tracker::new(&ids);
        tracker.apply(RunEvent::Done {
            worker_id: "a".into(),
            done: done(2, "bad host"),
        });
        tracker.apply(RunEvent::Gone {
            worker_id: "a".into(),
        });
        tracker.revive("a");
        assert!(tracker.all_finished());
        assert_eq!(tracker.finals().len(), 1);
        assert_eq!(tracker.error().as_deref(), Some("worker a: bad host"));
    }
}
