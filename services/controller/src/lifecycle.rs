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
    ControllerMessage, FinishRunRequest, LostWorker, RunState, StopWork, WorkDone, WorkerFinal,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::diagnosis::Goals;
use crate::placing::{Placing, follow_shape, place, send_changes};
use crate::registry::LastHeard;
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

/// Why a run failed when its controller shut down during it.
pub const SHUT_DOWN: &str =
    "controller shut down during the run; the next controller ends it in the store";

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
    /// Workers that disappeared without a `WorkDone` for the deltas they sent
    /// under one source (`Heartbeat.delta_source`): `FinishRun` reports
    /// them so the collector bounds and records what they took with them.
    lost: Vec<LostWorker>,
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
            lost: Vec::new(),
        }
    }

    /// Applies a worker's end (`Done`, `Gone`); other events change nothing
    /// here. `share_users` is the users the run had placed on the worker (its
    /// in-flight bound if it is gone).
    pub fn apply(&mut self, event: RunEvent, share_users: u32) {
        match event {
            RunEvent::Done { worker_id, done } => {
                if let Some(state) = self.workers.get_mut(&worker_id) {
                    // The same process came back and flushed: nothing is lost.
                    self.lost.retain(|lost| {
                        lost.worker_id != worker_id
                            || lost.delta_source.is_empty()
                            || lost.delta_source != done.delta_source
                    });
                    *state = WorkerState::Done(done);
                }
            }
            RunEvent::Gone { worker_id, last } => {
                if let Some(state @ WorkerState::Running) = self.workers.get_mut(&worker_id) {
                    *state = WorkerState::Gone;
                    let lost = lost_worker(&worker_id, last.as_ref(), share_users, unix_ms());
                    // Never heard of about this run on this stream: an
                    // earlier record of the worker already covers it.
                    let known = |known: &LostWorker| known.worker_id == worker_id;
                    if !(lost.delta_source.is_empty() && self.lost.iter().any(known)) {
                        self.lost.retain(|known| {
                            known.worker_id != worker_id || known.delta_source != lost.delta_source
                        });
                        self.lost.push(lost);
                    }
                }
            }
            RunEvent::Stop
            | RunEvent::Joined { .. }
            | RunEvent::Scale { .. }
            | RunEvent::ScaleRate { .. }
            | RunEvent::DataExhausted(_) => {}
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
                requests: done.requests,
                evicted_requests: done.evicted_requests,
            })
            .collect()
    }

    /// `FinishRun`'s lost workers: gone without a `WorkDone` for their
    /// deltas' source.
    pub fn lost(&self) -> &[LostWorker] {
        &self.lost
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

/// What the controller knows of a worker that disappeared at `now_ms`
/// (its clock): the collector bounds its loss from it (docs/RELIABILITY.md).
fn lost_worker(
    worker_id: &str,
    last: Option<&LastHeard>,
    share_users: u32,
    now_ms: i64,
) -> LostWorker {
    let beat = last.map(|last| &last.heartbeat);
    // The worker's clock runs `offset` ms ahead of ours, short by the
    // shortest heartbeat transit seen (the death is placed that much early).
    let offset = last.map_or(0, |last| last.clock_offset_ms);
    let in_flight = beat.map_or(0, |beat| beat.in_flight.max(u64::from(beat.active_users)));
    LostWorker {
        worker_id: worker_id.to_owned(),
        delta_source: beat
            .map(|beat| beat.delta_source.clone())
            .unwrap_or_default(),
        detected_at_ms: now_ms,
        worker_at_ms: now_ms + offset,
        heartbeat_requests: beat.map_or(0, |beat| beat.requests),
        heartbeat_at_ms: beat.map_or(0, |beat| beat.sent_at_ms),
        in_flight_max: in_flight.max(u64::from(share_users)),
        rate_rps: last.map_or(0.0, |last| last.rps),
    }
}

/// Drives `run` from RUNNING to FINISHED or FAILED; every line it logs
/// carries the run's id (`run_id`, a span field).
pub(crate) async fn drive(
    shared: Arc<Shared>,
    run: Arc<Run>,
    events: mpsc::UnboundedReceiver<RunEvent>,
    policy: StopPolicy,
    placing: Placing,
) {
    use tracing::Instrument as _;
    let span = tracing::info_span!("run", run_id = %run.id);
    drive_run(shared, run, events, policy, placing)
        .instrument(span)
        .await;
}

async fn drive_run(
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
    let mut exhausted: Option<crate::data::Exhaustion> = None;

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
                Some(RunEvent::DataExhausted(end)) => {
                    tracing::info!(run_id = %run.id, reason = %end.reason(), "stopping the run");
                    exhausted = Some(end);
                    break;
                }
                Some(event) => {
                    // A worker that leaves will not use the rows it leased.
                    let left = match &event {
                        RunEvent::Done { worker_id, .. } | RunEvent::Gone { worker_id, .. } => {
                            run.data.get().map(|data| data.leave(worker_id)).unwrap_or_default()
                        }
                        _ => Vec::new(),
                    };
                    let changes = place(&shared, &run, &mut tracker, &mut placing.membership, event);
                    send_changes(&shared, &run, &placing.template, placing.membership.is_open(), changes);
                    publish_lost(&run, &tracker);
                    run.status.send_modify(|status| {
                        status.target_users = placing.membership.users();
                        status.target_rate = placing.membership.rate();
                        status.workers = placing.membership.len() as u32;
                    });
                    if let Some(end) = left.into_iter().next() {
                        tracing::info!(run_id = %run.id, reason = %end.reason(), "stopping the run");
                        exhausted = Some(end);
                        break;
                    }
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
                    // Not waited for any longer: what they still hold is lost,
                    // and reported as such.
                    tracing::warn!(run_id = %run.id, workers = ?tracker.running(), "no WorkDone before the deadline");
                    for worker_id in tracker.running() {
                        let last = shared.registry.last_heard(&worker_id, &run.id);
                        let share = placing.membership.share_users(&worker_id);
                        tracker.apply(RunEvent::Gone { worker_id, last }, share);
                    }
                    publish_lost(&run, &tracker);
                    break;
                }
                event = events.recv() => match event {
                    Some(event) => {
                        let share = event.worker_id().map_or(0, |id| placing.membership.share_users(id));
                        tracker.apply(event, share);
                        publish_lost(&run, &tracker);
                    }
                    None => break,
                },
            }
        }
    }

    // Shut down mid-run: the workers' streams close with this process, so
    // their last deltas and WorkDones cannot be waited for here. Finishing
    // the run now would refuse those deltas; left running in the store, the
    // next controller ends it with the workers' finals (recovery), exactly
    // as after a crash.
    if shut_down {
        let _ = sampler.await;
        shared.registry.release(&run.id, tracker.ids());
        shared.runs.finish(&run.id);
        tracing::warn!(run_id = %run.id, "controller shut down during the run; the next controller ends it in the store");
        run.status.send_modify(|status| {
            status.state = RunState::Failed;
            status.error = SHUT_DOWN.to_owned();
        });
        return;
    }

    // Finishing: let the collector wait for the last deltas and summarise.
    let data_failure = exhausted
        .as_ref()
        .filter(|end| end.fail)
        .map(|end| format!("{} (exhausted: fail)", end.reason()));
    let stop_reason = exhausted
        .as_ref()
        .filter(|end| !end.fail)
        .map(crate::data::Exhaustion::reason)
        .unwrap_or_default();
    let error = policy
        .failure
        .clone()
        .or_else(|| tracker.error())
        .or(data_failure);
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
        lost: tracker.lost().to_vec(),
    };
    for lost in tracker.lost() {
        tracing::error!(run_id = %run.id, worker_id = %lost.worker_id, delta_source = %lost.delta_source, heartbeat_requests = lost.heartbeat_requests, in_flight_max = lost.in_flight_max, "worker lost without its final flush");
    }
    let (state, error, stats) = match finish_in_collector(&shared, request).await {
        Ok(response) => {
            if response.incomplete {
                tracing::warn!(run_id = %run.id, "collector finished the run with deltas missing");
            }
            (state, error.unwrap_or_default(), response.stats)
        }
        Err(reason) => (
            RunState::Failed,
            format!("failed to finish the run in the collector: {reason}"),
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
        status.stop_reason = stop_reason;
        status.final_stats = stats;
        status.diagnoses = diagnoses;
    });
}

/// How long `FinishRun` is retried while the collector is unavailable
/// (restarting, or its database is down), beyond its own wait.
const FINISH_RETRY: Duration = Duration::from_secs(60);

/// Calls the collector's `FinishRun` (idempotent), retrying with backoff
/// while it is unavailable, within its wait plus [`FINISH_RETRY`].
async fn finish_in_collector(
    shared: &Shared,
    request: FinishRunRequest,
) -> Result<cicada_proto::v1::FinishRunResponse, String> {
    let deadline =
        Instant::now() + shared.config.finish_wait + shared.config.collector_timeout + FINISH_RETRY;
    let mut pause = Duration::from_millis(250);
    loop {
        let mut collector = shared.collector.clone();
        let call = collector.finish_run(request.clone());
        let status = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => status,
            Err(_) => return Err("timed out".to_owned()),
        };
        let retry = status.code() == tonic::Code::Unavailable && Instant::now() + pause < deadline;
        if !retry {
            return Err(status.to_string());
        }
        tracing::warn!(run_id = %request.run_id, %status, retry_in = ?pause, "collector unavailable to finish the run; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(4));
    }
}

/// Shows the lost workers in the run's status (live view) when they changed.
fn publish_lost(run: &Run, tracker: &Tracker) {
    let ids: Vec<String> = tracker
        .lost()
        .iter()
        .map(|lost| lost.worker_id.clone())
        .collect();
    run.status.send_if_modified(|status| {
        let changed = status.lost_workers != ids;
        if changed {
            status.lost_workers.clone_from(&ids);
        }
        changed
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

    fn apply(tracker: &mut Tracker, event: RunEvent) {
        tracker.apply(event, 0);
    }

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
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "a".into(),
                done: WorkDone {
                    delta_source: "a.0000beef".into(),
                    ..done(4, "")
                },
            },
        );
        let finals = tracker.finals();
        assert_eq!(finals[0].worker_id, "a.0000beef");
        assert_eq!(finals[0].last_seq, 4);

        // It comes back (restarted under the same id) and finishes again:
        // both sources are waited for.
        assert!(tracker.add("a"));
        assert!(!tracker.all_finished());
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "a".into(),
                done: WorkDone {
                    delta_source: "a.0000cafe".into(),
                    ..done(2, "")
                },
            },
        );
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
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "a".into(),
                done: done(7, ""),
            },
        );
        apply(
            &mut tracker,
            RunEvent::Gone {
                worker_id: "b".into(),
                last: None,
            },
        );
        // Unknown workers and Stop change nothing.
        apply(
            &mut tracker,
            RunEvent::Gone {
                worker_id: "zz".into(),
                last: None,
            },
        );
        apply(&mut tracker, RunEvent::Stop);
        assert_eq!(tracker.running(), vec!["c".to_owned()]);
        assert_eq!(tracker.not_done(), vec!["b".to_owned(), "c".to_owned()]);

        // b reconnected and got StopWork: it is waited for again.
        tracker.revive("b");
        assert_eq!(tracker.running(), vec!["b".to_owned(), "c".to_owned()]);
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "b".into(),
                done: done(3, ""),
            },
        );
        apply(
            &mut tracker,
            RunEvent::Gone {
                worker_id: "c".into(),
                last: None,
            },
        );
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
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "a".into(),
                done: done(2, "bad host"),
            },
        );
        apply(
            &mut tracker,
            RunEvent::Gone {
                worker_id: "a".into(),
                last: None,
            },
        );
        tracker.revive("a");
        assert!(tracker.all_finished());
        assert_eq!(tracker.finals().len(), 1);
        assert_eq!(tracker.error().as_deref(), Some("worker a: bad host"));
    }

    fn heard(source: &str, requests: u64, sent_at_ms: i64, received_at_ms: i64) -> LastHeard {
        LastHeard {
            heartbeat: cicada_proto::v1::Heartbeat {
                run_id: "r".into(),
                active_users: 40,
                in_flight: 12,
                requests,
                delta_source: source.into(),
                sent_at_ms,
                ..Default::default()
            },
            received_at_ms,
            clock_offset_ms: sent_at_ms - received_at_ms,
            rps: 900.0,
        }
    }

    #[test]
    fn a_lost_worker_is_described_in_its_own_clock() {
        // Its clock runs 300 ms ahead of the controller's.
        let last = heard("a.1", 9_000, 10_300, 10_000);
        let lost = lost_worker("a", Some(&last), 50, 10_800);
        assert_eq!(lost.delta_source, "a.1");
        assert_eq!(lost.detected_at_ms, 10_800);
        assert_eq!(lost.worker_at_ms, 11_100);
        assert_eq!(
            (lost.heartbeat_requests, lost.heartbeat_at_ms),
            (9_000, 10_300)
        );
        // Its share (50 users) bounds what it had in flight.
        assert_eq!(lost.in_flight_max, 50);
        assert_eq!(lost.rate_rps, 900.0);
        // Without a share (after it left the membership): its own report.
        assert_eq!(lost_worker("a", Some(&last), 0, 10_800).in_flight_max, 40);
        // Never heard from about the run: only the share is known.
        let unknown = lost_worker("a", None, 7, 10_800);
        assert_eq!(unknown.delta_source, "");
        assert_eq!((unknown.heartbeat_at_ms, unknown.in_flight_max), (0, 7));
    }

    #[test]
    fn lost_until_the_same_source_flushes() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let mut tracker = Tracker::new(&ids);
        let gone = |id: &str, source: &str| RunEvent::Gone {
            worker_id: id.into(),
            last: Some(heard(source, 100, 1, 1)),
        };
        tracker.apply(gone("a", "a.1"), 10);
        tracker.apply(gone("b", "b.1"), 10);
        // b reconnects and drops again before a heartbeat about the run: its
        // record stays the one with its source.
        assert!(tracker.add("b"));
        let unnamed = RunEvent::Gone {
            worker_id: "b".into(),
            last: None,
        };
        tracker.apply(unnamed, 10);
        assert_eq!(tracker.lost().len(), 2);
        // a's stream only dropped: it comes back and flushes its source.
        assert!(tracker.add("a"));
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "a".into(),
                done: WorkDone {
                    delta_source: "a.1".into(),
                    ..done(5, "")
                },
            },
        );
        // b was restarted: its new process flushes a new source, the old
        // one's deltas stay lost.
        assert!(tracker.add("b"));
        apply(
            &mut tracker,
            RunEvent::Done {
                worker_id: "b".into(),
                done: WorkDone {
                    delta_source: "b.2".into(),
                    ..done(3, "")
                },
            },
        );
        let lost: Vec<&str> = tracker
            .lost()
            .iter()
            .map(|l| l.delta_source.as_str())
            .collect();
        assert_eq!(lost, ["b.1"]);
        assert!(tracker.all_finished());
    }
}
