//! The open model: iterations start at a fixed rate whatever the response
//! times, on a bounded pool of virtual users.
//!
//! Arrival `k` (0, 1, 2, ...) of this worker is due at `origin + k / rate`
//! ([`Schedule`]). Thread `i` of `n` owns the arrivals `k ≡ i (mod n)`, so the
//! threads share no lock or counter on the hot path, and its own slice of the
//! virtual-user pool (`max_in_flight` split over the threads, the classes
//! interleaved by the controller's per-class counts). When an arrival is due
//! the thread takes an idle virtual user (creating it, up to its slice, on
//! first use: variables rendered, `on_start` run as part of its first
//! iteration) and runs one task of its class, picked by weight. When every
//! user is busy the arrival is dropped and counted, never queued: a queue
//! would turn into a closed model at the bound.
//!
//! Latency: the first request of an iteration is timed from the arrival's
//! due time (so time spent waiting for a late generator or a stalled target
//! counts: no coordinated omission) and also from its actual send (the
//! uncorrected figure); later requests of the same iteration from their send.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ramp::Interleave;
use super::thread::{self, Command, ThreadSetup};
use super::user::{self, User};
use super::{EngineError, Load};

/// When each arrival is due: arrival `k >= first` at
/// `origin + (k - first) / rate`. A rate of 0 (or less) schedules nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Schedule {
    origin: Instant,
    first: u64,
    rate: f64,
}

impl Schedule {
    /// Arrivals from 0 on at `rate` per second, the first at `origin`.
    pub fn new(origin: Instant, rate: f64) -> Schedule {
        Schedule {
            origin,
            first: 0,
            rate,
        }
    }

    /// When arrival `k` is due; `None` when the rate is 0. Arrivals before
    /// `first` belong to an earlier schedule and are due at once.
    pub fn at(&self, k: u64) -> Option<Instant> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return None;
        }
        let offset = k.saturating_sub(self.first) as f64 / self.rate;
        Some(self.origin + Duration::from_secs_f64(offset.min(1e9)))
    }

    /// The first arrival due at or after `t`.
    pub fn first_due_from(&self, t: Instant) -> u64 {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return self.first;
        }
        let elapsed = t.saturating_duration_since(self.origin).as_secs_f64();
        let mut k = self.first + (elapsed * self.rate).ceil() as u64;
        // Correct the float estimate against `at`, which the threads use.
        while k > self.first && self.at(k - 1).is_some_and(|due| due >= t) {
            k -= 1;
        }
        while self.at(k).is_some_and(|due| due < t) {
            k += 1;
        }
        k
    }

    /// The schedule after a rate change at `at`: arrivals due before `at`
    /// keep their times, the following ones come at the new rate from `at`.
    pub fn set_rate(&self, at: Instant, rate: f64) -> Schedule {
        Schedule {
            origin: at,
            first: self.first_due_from(at),
            rate,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// The smallest `k >= from` with `k ≡ residue (mod stride)`.
fn align(from: u64, residue: u64, stride: u64) -> u64 {
    let base = from - from % stride + residue;
    if base >= from { base } else { base + stride }
}

/// One thread's part of the open model.
pub(crate) struct ThreadArrivals {
    /// This thread runs arrivals `k ≡ residue (mod stride)`.
    residue: u64,
    stride: u64,
    /// The class of each virtual user this thread may create, in order.
    classes: Vec<usize>,
    /// Global index of this thread's first user, and the step between its users.
    first_user_id: u64,
    user_id_stride: u64,
}

/// The open-model side of an engine: validated load, per-thread shares and
/// the current schedule.
pub(crate) struct Arrivals {
    rate: f64,
    threads: usize,
    /// Class of every virtual user of this worker, interleaved by weight.
    classes: Vec<usize>,
    user_id_offset: u64,
    schedule: Mutex<Schedule>,
}

impl Arrivals {
    /// The open model for `load`, or `None` for the closed model. Uses at
    /// most `threads` threads and never more than one per virtual user.
    pub fn new(load: &Load, threads: usize) -> Result<Option<Arrivals>, EngineError> {
        // The open model is a pool of virtual users; its rate may start at 0
        // (a shape that ramps up from nothing).
        if load.rate == 0.0 && load.max_in_flight == 0 {
            return Ok(None);
        }
        let invalid = |reason: String| Err(EngineError::InvalidLoad { reason });
        if !(load.rate.is_finite() && load.rate >= 0.0) {
            return invalid(format!("rate must be a number >= 0, not {}", load.rate));
        }
        if load.max_in_flight == 0 {
            return invalid("max_in_flight must be at least 1 in the open model".to_owned());
        }
        let users: u64 = load.class_users.iter().map(|&c| u64::from(c)).sum();
        if users != u64::from(load.max_in_flight) {
            return invalid(format!(
                "class_users add up to {users}, not max_in_flight {}",
                load.max_in_flight
            ));
        }
        let classes: Vec<usize> = Interleave::new(&load.class_users).collect();
        Ok(Some(Arrivals {
            rate: load.rate,
            threads: threads.clamp(1, classes.len()),
            classes,
            user_id_offset: load.user_id_offset,
            schedule: Mutex::new(Schedule::new(Instant::now(), 0.0)),
        }))
    }

    /// Threads the engine starts.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// What thread `index` runs.
    pub fn thread(&self, index: usize) -> ThreadArrivals {
        let stride = self.threads as u64;
        ThreadArrivals {
            residue: index as u64,
            stride,
            classes: self
                .classes
                .iter()
                .copied()
                .skip(index)
                .step_by(self.threads)
                .collect(),
            first_user_id: self.user_id_offset + index as u64,
            user_id_stride: stride,
        }
    }

    /// Starts the schedule now (once every thread exists, so the first
    /// arrivals are not late by the threads' start-up).
    pub fn start(&self, threads: &[mpsc::UnboundedSender<Command>]) {
        let schedule = Schedule::new(Instant::now(), self.rate);
        *self.schedule.lock() = schedule;
        for thread in threads {
            let _ = thread.send(Command::SetSchedule(schedule));
        }
    }

    /// Changes the rate from now on (live changes of the open model).
    pub fn set_rate(&self, rate: f64, threads: &[mpsc::UnboundedSender<Command>]) {
        let mut schedule = self.schedule.lock();
        *schedule = schedule.set_rate(Instant::now(), rate);
        for thread in threads {
            let _ = thread.send(Command::SetSchedule(*schedule));
        }
    }

    /// The current rate, iterations per second.
    pub fn rate(&self) -> f64 {
        self.schedule.lock().rate()
    }
}

/// A virtual user of the open model, idle between iterations.
struct Vu {
    user: User,
    class: usize,
    /// Whether its `on_start` steps ran.
    started: bool,
}

/// Waits until `at`, or forever when nothing is scheduled.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An open-model engine thread: runs its arrivals until stopped.
pub(crate) async fn run(setup: ThreadSetup, open: ThreadArrivals) {
    let (ctx, mut commands) = thread::context(setup);
    let stats = ctx.stats.clone();
    let plan = ctx.plan.clone();
    let ThreadArrivals {
        residue,
        stride,
        classes,
        first_user_id,
        user_id_stride,
    } = open;
    // Nothing is due until the engine sends the schedule.
    let mut schedule = Schedule::new(Instant::now(), 0.0);
    let mut next = residue;
    let mut idle: Vec<Vu> = Vec::new();
    let mut created = 0usize;
    let mut running: JoinSet<Vu> = JoinSet::new();
    loop {
        if !ctx.stopping.get() {
            let now = Instant::now();
            while let Some(due) = schedule.at(next).filter(|&due| due <= now) {
                next += stride;
                stats.add_arrival();
                let vu = idle.pop().or_else(|| {
                    let class = *classes.get(created)?;
                    let user_id = first_user_id + created as u64 * user_id_stride;
                    created += 1;
                    Some(Vu {
                        user: User::new(&plan.classes[class], user_id, &ctx.data),
                        class,
                        started: false,
                    })
                });
                let Some(mut vu) = vu else {
                    stats.add_dropped();
                    continue;
                };
                stats.add_active_users(1);
                let ctx = ctx.clone();
                let plan = plan.clone();
                running.spawn_local(async move {
                    let class = &plan.classes[vu.class];
                    user::iterate(&ctx, &mut vu.user, class, &mut vu.started, due).await;
                    vu
                });
            }
        }
        let wake = schedule.at(next);
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Stop) => {
                    ctx.stopping.set(true);
                    ctx.stop.notify_waiters();
                }
                Some(Command::SetSchedule(new)) => {
                    // Arrivals this thread already ran are not run again.
                    schedule = new;
                    next = next.max(align(new.first, residue, stride));
                }
                // Users are a closed-model command.
                Some(Command::Spawn { .. } | Command::Retire { .. }) => {}
                Some(Command::Abort) | None => break,
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                stats.add_active_users(-1);
                match done {
                    Ok(vu) => idle.push(vu),
                    // A panicked iteration loses its user; another may be created.
                    Err(_) => created = created.saturating_sub(1),
                }
            }
            () = sleep_until(wake), if !ctx.stopping.get() => {}
        }
        if ctx.stopping.get() && running.is_empty() {
            break;
        }
    }
    // Aborting drops each iteration; its in-flight guard counts the request
    // as cancelled.
    running.abort_all();
    while running.join_next().await.is_some() {
        stats.add_active_users(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_due_at_k_over_rate() {
        let origin = Instant::now();
        let s = Schedule::new(origin, 200.0);
        assert_eq!(s.at(0), Some(origin));
        assert_eq!(s.at(200), Some(origin + Duration::from_secs(1)));
        assert_eq!(s.at(3), Some(origin + Duration::from_millis(15)));
        assert_eq!(Schedule::new(origin, 0.0).at(5), None);
        // Due at or after 1 s: arrival 200 itself.
        assert_eq!(s.first_due_from(origin + Duration::from_secs(1)), 200);
        assert_eq!(s.first_due_from(origin + Duration::from_micros(1)), 1);
        assert_eq!(s.first_due_from(origin), 0);
    }

    #[test]
    fn a_rate_change_keeps_the_past_and_paces_the_future() {
        let origin = Instant::now();
        let s = Schedule::new(origin, 100.0);
        let at = origin + Duration::from_millis(1005);
        let changed = s.set_rate(at, 1000.0);
        // 0..=100 were due before the change; 101 comes at the change.
        assert_eq!(changed.first, 101);
        assert_eq!(changed.at(101), Some(at));
        assert_eq!(changed.at(1101), Some(at + Duration::from_secs(1)));
        assert_eq!(changed.rate(), 1000.0);
        let paused = changed.set_rate(at + Duration::from_secs(1), 0.0);
        assert_eq!(paused.at(5000), None);
        assert_eq!(paused.first, 1101);
        let resumed = paused.set_rate(at + Duration::from_secs(2), 10.0);
        assert_eq!(resumed.first, 1101);
    }

    #[test]
    fn threads_take_every_nth_arrival() {
        assert_eq!(align(0, 0, 3), 0);
        assert_eq!(align(0, 2, 3), 2);
        assert_eq!(align(7, 0, 3), 9);
        assert_eq!(align(7, 1, 3), 7);
        assert_eq!(align(7, 2, 3), 8);
        let load = Load {
            class_users: vec![3, 1],
            spawn_rate: 0.0,
            user_id_offset: 100,
            rate: 50.0,
            max_in_flight: 4,
        };
        let arrivals = Arrivals::new(&load, 8).unwrap().unwrap();
        // Never more threads than virtual users.
        assert_eq!(arrivals.threads(), 4);
        let classes: Vec<usize> = (0..4).flat_map(|i| arrivals.thread(i).classes).collect();
        assert_eq!(classes.iter().filter(|&&c| c == 0).count(), 3);
        assert_eq!(arrivals.thread(2).first_user_id, 102);
        let bad = |rate, max_in_flight, class_users| {
            Arrivals::new(
                &Load {
                    class_users,
                    spawn_rate: 0.0,
                    user_id_offset: 0,
                    rate,
                    max_in_flight,
                },
                2,
            )
            .is_err()
        };
        assert!(bad(-1.0, 1, vec![1]));
        assert!(bad(f64::NAN, 1, vec![1]));
        assert!(bad(10.0, 0, vec![0]));
        assert!(bad(10.0, 2, vec![1]));
        let closed = Load {
            class_users: vec![1],
            spawn_rate: 1.0,
            ..Load::default()
        };
        assert!(Arrivals::new(&closed, 2).unwrap().is_none());
    }
}
