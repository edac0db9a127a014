//! Connected workers: identity, heartbeat bookkeeping and run assignment.
//!
//! Each `WorkerSession` stream gets a connection number; a worker that reconnects
//! under the same id replaces its old entry, and the old stream's clean-up
//! then finds a different number and leaves the new entry alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cicada_proto::v1::{ControllerMessage, Heartbeat, Register, RunDelivery, WorkerInfo};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tonic::Status;

use crate::diagnosis::WorkerLoad;

/// The sending half of a worker's `WorkerSession` response stream.
pub type Outbound = mpsc::Sender<Result<ControllerMessage, Status>>;

/// One connected worker.
#[derive(Debug)]
pub struct WorkerEntry {
    /// Connection number of the stream this entry belongs to.
    pub conn: u64,
    pub register: Register,
    pub tx: Outbound,
    /// The latest heartbeat (default until the first one).
    pub heartbeat: Heartbeat,
    pub last_seen: Instant,
    /// When the latest heartbeat arrived (Unix ms, this controller's clock;
    /// 0 until the first one).
    pub heard_at_ms: i64,
    /// The worker's clock minus ours, as the largest `sent_at - received_at`
    /// over this stream's heartbeats: each one is short by its transit
    /// time, the largest by the shortest transit.
    pub clock_offset_ms: Option<i64>,
    /// The run the controller placed this worker in, if any.
    pub assigned: Option<String>,
    /// Rows (requests, groups, new connections: what its deltas count)
    /// per second between the last two heartbeats of one run: what the
    /// loss bound of a lost worker uses.
    pub rps: f64,
    /// Requests alone per second over the same interval (shown, and what
    /// its speed is measured by).
    pub request_rps: f64,
    /// What its busy heartbeats measured of its speed.
    pub capacity: Capacity,
}

/// A worker's measured requests per CPU-second: requests and CPU seconds
/// of the heartbeat intervals in which it used at least
/// [`Capacity::BUSY_CORES`] of a core (below that its fixed costs, delta
/// cuts and heartbeats, would pass for slowness), each old interval
/// weighing less ([`Capacity::KEEP`] per interval). Kept across runs: it
/// is the machine's, not the run's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    requests: f64,
    cpu_seconds: f64,
}

impl Capacity {
    /// Share of one core an interval must use to count.
    pub const BUSY_CORES: f64 = 0.2;
    /// Weight an interval keeps at each later one: ~100 intervals matter.
    pub const KEEP: f64 = 0.99;

    /// Counts one heartbeat interval of `seconds` with `requests` completed
    /// at `cpu_percent` (of one core).
    pub fn add(&mut self, requests: f64, cpu_percent: f64, seconds: f64) {
        let cores = cpu_percent / 100.0;
        if !(cores >= Self::BUSY_CORES && requests > 0.0 && seconds > 0.0) {
            return;
        }
        self.requests = self.requests * Self::KEEP + requests;
        self.cpu_seconds = self.cpu_seconds * Self::KEEP + cores * seconds;
    }

    /// Requests per CPU-second, 0 until a busy interval was seen.
    pub fn requests_per_cpu_second(&self) -> f64 {
        if self.cpu_seconds > 0.0 {
            self.requests / self.cpu_seconds
        } else {
            0.0
        }
    }
}

/// Measured speeds (requests per CPU-second) closer than this ratio are
/// taken as equal: placement then follows declared cores.
const SAME_SPEED: f64 = 1.15;

/// Placement weights (`split::split`'s per-worker weights) of workers with
/// these declared cores and measured speeds (requests per CPU-second, 0
/// when unmeasured): 100 per core, times the worker's speed relative to
/// the median measured one (an unmeasured worker counts as the median).
/// When fewer than two workers were measured or their speeds are within
/// [`SAME_SPEED`] of each other, 100 per declared core.
pub fn placement_weights(workers: &[(u32, f64)]) -> Vec<u32> {
    let mut speeds: Vec<f64> = workers
        .iter()
        .map(|&(_, speed)| speed)
        .filter(|&speed| speed > 0.0)
        .collect();
    speeds.sort_by(f64::total_cmp);
    let by_cores = || {
        workers
            .iter()
            .map(|&(cores, _)| cores.max(1) * 100)
            .collect()
    };
    let (Some(&slowest), Some(&fastest)) = (speeds.first(), speeds.last()) else {
        return by_cores();
    };
    if speeds.len() < 2 || fastest <= slowest * SAME_SPEED {
        return by_cores();
    }
    let median = speeds[speeds.len() / 2];
    workers
        .iter()
        .map(|&(cores, speed)| {
            let relative = if speed > 0.0 { speed / median } else { 1.0 };
            (f64::from(cores.max(1)) * 100.0 * relative)
                .round()
                .clamp(1.0, f64::from(u32::MAX)) as u32
        })
        .collect()
}

impl WorkerEntry {
    /// What the worker last said about `run_id`, if its latest heartbeat
    /// was about that run.
    pub fn last_heard(&self, run_id: &str) -> Option<LastHeard> {
        (self.heartbeat.run_id == run_id && self.heard_at_ms > 0).then(|| LastHeard {
            heartbeat: self.heartbeat.clone(),
            received_at_ms: self.heard_at_ms,
            clock_offset_ms: self
                .clock_offset_ms
                .unwrap_or(self.heartbeat.sent_at_ms - self.heard_at_ms),
            rps: self.rps,
        })
    }

    /// Idle: no run placed here, and the worker reports none either (it may
    /// still run one started by a previous controller).
    fn is_idle(&self) -> bool {
        self.assigned.is_none() && self.heartbeat.run_id.is_empty()
    }
}

/// The fleet at a glance ([`Registry::summary`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub connected: usize,
    pub idle: usize,
    /// The longest time since a connected worker was last heard from.
    pub longest_silence: std::time::Duration,
}

/// A worker's latest heartbeat about a run and when it arrived: what the
/// controller knows of a worker that disappears.
#[derive(Debug, Clone, PartialEq)]
pub struct LastHeard {
    pub heartbeat: Heartbeat,
    /// Unix ms, the controller's clock.
    pub received_at_ms: i64,
    /// The worker's clock minus ours (ms; see `WorkerEntry::clock_offset_ms`).
    pub clock_offset_ms: i64,
    /// Its completion rate between its last two heartbeats.
    pub rps: f64,
}

/// A worker picked for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub worker_id: String,
    pub cores: u32,
    /// Its placement weight (`placement_weights`; 100 per core until set).
    pub weight: u32,
}

/// A worker whose oldest unacknowledged delta is older than this is behind
/// (`RunDelivery.workers_behind`).
const BEHIND: std::time::Duration = std::time::Duration::from_secs(2);

/// Every connected worker, by id.
#[derive(Debug, Default)]
pub struct Registry {
    workers: Mutex<HashMap<String, WorkerEntry>>,
    next_conn: AtomicU64,
}

impl Registry {
    /// Adds (or replaces) a worker; returns the new connection number and
    /// the replaced entry, if any.
    pub fn add(&self, register: Register, tx: Outbound) -> (u64, Option<WorkerEntry>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = WorkerEntry {
            conn,
            register: register.clone(),
            tx,
            heartbeat: Heartbeat::default(),
            last_seen: Instant::now(),
            heard_at_ms: 0,
            clock_offset_ms: None,
            assigned: None,
            rps: 0.0,
            request_rps: 0.0,
            capacity: replaced_capacity(&self.workers.lock(), &register.worker_id),
        };
        let replaced = self.workers.lock().insert(register.worker_id, entry);
        (conn, replaced)
    }

    /// Removes the worker if `conn` is still its connection.
    pub fn remove(&self, worker_id: &str, conn: u64) -> Option<WorkerEntry> {
        let mut workers = self.workers.lock();
        if workers
            .get(worker_id)
            .is_some_and(|entry| entry.conn == conn)
        {
            workers.remove(worker_id)
        } else {
            None
        }
    }

    /// Records a heartbeat.
    pub fn heartbeat(&self, worker_id: &str, conn: u64, heartbeat: Heartbeat) {
        if let Some(entry) = self.entry_mut(worker_id, conn, &mut self.workers.lock()) {
            let now = Instant::now();
            let elapsed = now - entry.last_seen;
            entry.rps = rate_between(&entry.heartbeat, &heartbeat, elapsed, |h| h.requests);
            // A worker that predates `request_rows` reports 0 there.
            entry.request_rps = if heartbeat.request_rows > 0 || heartbeat.requests == 0 {
                rate_between(&entry.heartbeat, &heartbeat, elapsed, |h| h.request_rows)
            } else {
                entry.rps
            };
            entry.capacity.add(
                entry.request_rps * elapsed.as_secs_f64(),
                heartbeat.cpu_percent,
                elapsed.as_secs_f64(),
            );
            let heard_at_ms = crate::lifecycle::unix_ms();
            if heartbeat.sent_at_ms > 0 {
                let offset = heartbeat.sent_at_ms - heard_at_ms;
                entry.clock_offset_ms =
                    Some(entry.clock_offset_ms.map_or(offset, |o| o.max(offset)));
            }
            entry.heartbeat = heartbeat;
            entry.last_seen = now;
            entry.heard_at_ms = heard_at_ms;
        }
    }

    /// Notes that the worker finished `run_id`, so it counts as idle again
    /// before its next heartbeat says so.
    pub fn work_done(&self, worker_id: &str, conn: u64, run_id: &str) {
        if let Some(entry) = self.entry_mut(worker_id, conn, &mut self.workers.lock()) {
            entry.last_seen = Instant::now();
            if entry.heartbeat.run_id == run_id {
                entry.heartbeat.run_id.clear();
                entry.heartbeat.active_users = 0;
                entry.heartbeat.in_flight = 0;
                entry.rps = 0.0;
                entry.request_rps = 0.0;
            }
        }
    }

    fn entry_mut<'a>(
        &self,
        worker_id: &str,
        conn: u64,
        workers: &'a mut HashMap<String, WorkerEntry>,
    ) -> Option<&'a mut WorkerEntry> {
        workers
            .get_mut(worker_id)
            .filter(|entry| entry.conn == conn)
    }

    /// Assigns every idle worker to `run_id`, sorted by worker id.
    pub fn claim_idle(&self, run_id: &str) -> Vec<Claimed> {
        let mut workers = self.workers.lock();
        let mut claimed: Vec<Claimed> = workers
            .values_mut()
            .filter(|entry| entry.is_idle())
            .map(|entry| {
                entry.assigned = Some(run_id.to_owned());
                Claimed {
                    worker_id: entry.register.worker_id.clone(),
                    cores: entry.register.cores,
                    weight: entry.register.cores.max(1) * 100,
                }
            })
            .collect();
        claimed.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        claimed
    }

    /// The placement weight of each of `workers` (id, declared cores), by
    /// [`placement_weights`] over every registered worker's measured speed
    /// (so a worker joining later is weighed in the same unit).
    pub fn placement_weights(&self, workers: &[(&str, u32)]) -> Vec<u32> {
        let registered = self.workers.lock();
        let speed = |id: &str| {
            registered
                .get(id)
                .map_or(0.0, |entry| entry.capacity.requests_per_cpu_second())
        };
        // The others' speeds set the median; only `workers` are returned.
        let mut all: Vec<(u32, f64)> = workers
            .iter()
            .map(|&(id, cores)| (cores, speed(id)))
            .collect();
        all.extend(
            registered
                .values()
                .filter(|entry| {
                    !workers
                        .iter()
                        .any(|(id, _)| *id == entry.register.worker_id)
                })
                .map(|entry| {
                    (
                        entry.register.cores,
                        entry.capacity.requests_per_cpu_second(),
                    )
                }),
        );
        placement_weights(&all)[..workers.len()].to_vec()
    }

    /// Assigns one worker to `run_id` if it is idle or already working on
    /// it; false when it is gone or busy with another run.
    pub fn claim(&self, worker_id: &str, run_id: &str) -> bool {
        let mut workers = self.workers.lock();
        let Some(entry) = workers.get_mut(worker_id) else {
            return false;
        };
        let free = entry.assigned.as_deref().is_none_or(|r| r == run_id)
            && (entry.heartbeat.run_id.is_empty() || entry.heartbeat.run_id == run_id);
        if free {
            entry.assigned = Some(run_id.to_owned());
        }
        free
    }

    /// Claims the workers whose heartbeats say they run `run_id`; returns
    /// their ids and cores.
    pub fn reporting(&self, run_id: &str) -> Vec<(String, u32)> {
        let mut workers = self.workers.lock();
        let mut found: Vec<(String, u32)> = workers
            .values_mut()
            .filter(|entry| entry.heartbeat.run_id == run_id)
            .map(|entry| {
                entry.assigned = Some(run_id.to_owned());
                (entry.register.worker_id.clone(), entry.register.cores)
            })
            .collect();
        found.sort();
        found
    }

    /// Removes the workers not heard from for longer than `silence`; their
    /// streams end when the entries (holding the senders) are dropped.
    pub fn expire(&self, silence: std::time::Duration) -> Vec<WorkerEntry> {
        let now = Instant::now();
        let mut workers = self.workers.lock();
        let stale: Vec<String> = workers
            .iter()
            .filter(|(_, entry)| now.duration_since(entry.last_seen) > silence)
            .map(|(id, _)| id.clone())
            .collect();
        stale.iter().filter_map(|id| workers.remove(id)).collect()
    }

    /// Releases the listed workers from `run_id` (those still assigned to it).
    pub fn release<'a>(&self, run_id: &str, worker_ids: impl IntoIterator<Item = &'a str>) {
        let mut workers = self.workers.lock();
        for id in worker_ids {
            if let Some(entry) = workers.get_mut(id)
                && entry.assigned.as_deref() == Some(run_id)
            {
                entry.assigned = None;
            }
        }
    }

    /// What `worker_id` last said about `run_id`, if it is connected.
    pub fn last_heard(&self, worker_id: &str, run_id: &str) -> Option<LastHeard> {
        self.workers.lock().get(worker_id)?.last_heard(run_id)
    }

    /// The stream to `worker_id`, if connected.
    pub fn sender(&self, worker_id: &str) -> Option<Outbound> {
        self.workers
            .lock()
            .get(worker_id)
            .map(|entry| entry.tx.clone())
    }

    /// Sum of the users the workers report running for `run_id`.
    pub fn active_users(&self, run_id: &str) -> u32 {
        self.workers
            .lock()
            .values()
            .filter(|entry| entry.heartbeat.run_id == run_id)
            .map(|entry| entry.heartbeat.active_users)
            .sum()
    }

    /// CPU and in-flight state of the workers running `run_id`.
    pub fn loads(&self, run_id: &str) -> Vec<WorkerLoad> {
        self.workers
            .lock()
            .values()
            .filter(|entry| entry.heartbeat.run_id == run_id)
            .map(|entry| WorkerLoad {
                worker_id: entry.register.worker_id.clone(),
                cpu: entry.heartbeat.cpu_percent / (100.0 * f64::from(entry.register.cores.max(1))),
                at_bound: false,
                cores: entry.register.cores,
                requests_per_cpu_second: entry.capacity.requests_per_cpu_second(),
            })
            .collect()
    }

    /// How far the deltas of `run_id`'s workers are from the collector, from
    /// their heartbeats (the controller's own error and the lost workers
    /// are the caller's to fill in).
    pub fn delivery(&self, run_id: &str) -> RunDelivery {
        let workers = self.workers.lock();
        let mut delivery = RunDelivery::default();
        let states = workers
            .values()
            .filter(|entry| entry.heartbeat.run_id == run_id)
            .filter_map(|entry| entry.heartbeat.delivery.as_ref());
        for state in states {
            if state.oldest_pending_ms > BEHIND.as_millis() as u64 {
                delivery.workers_behind += 1;
            }
            delivery.pending_deltas += state.pending_deltas;
            delivery.oldest_pending_ms = delivery.oldest_pending_ms.max(state.oldest_pending_ms);
            delivery.evicted_requests += state.evicted_requests;
            if delivery.last_error.is_empty() {
                delivery.last_error.clone_from(&state.last_error);
            }
        }
        delivery
    }

    /// Number of connected workers with no run.
    pub fn idle_count(&self) -> usize {
        self.workers
            .lock()
            .values()
            .filter(|entry| entry.is_idle())
            .count()
    }

    /// Connected and idle workers and the longest silence among them, read
    /// under one lock (for `/metrics`).
    pub fn summary(&self) -> WorkerSummary {
        let now = Instant::now();
        let workers = self.workers.lock();
        WorkerSummary {
            connected: workers.len(),
            idle: workers.values().filter(|entry| entry.is_idle()).count(),
            longest_silence: workers
                .values()
                .map(|entry| now.saturating_duration_since(entry.last_seen))
                .max()
                .unwrap_or_default(),
        }
    }

    /// Number of connected workers.
    pub fn len(&self) -> usize {
        self.workers.lock().len()
    }

    /// True when no worker is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The workers as `ListWorkers` reports them, sorted by id.
    pub fn list(&self) -> Vec<WorkerInfo> {
        let now = Instant::now();
        let mut list: Vec<WorkerInfo> = self
            .workers
            .lock()
            .values()
            .map(|entry| WorkerInfo {
                worker_id: entry.register.worker_id.clone(),
                cores: entry.register.cores,
                version: entry.register.version.clone(),
                hostname: entry.register.hostname.clone(),
                run_id: entry
                    .assigned
                    .clone()
                    .unwrap_or_else(|| entry.heartbeat.run_id.clone()),
                active_users: entry.heartbeat.active_users,
                in_flight: entry.heartbeat.in_flight,
                cpu_percent: entry.heartbeat.cpu_percent,
                rss_bytes: entry.heartbeat.rss_bytes,
                last_seen_ms: now.duration_since(entry.last_seen).as_millis() as u64,
                rps: entry.request_rps,
                delivery: entry.heartbeat.delivery.clone(),
                requests_per_cpu_second: entry.capacity.requests_per_cpu_second(),
            })
            .collect();
        list.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        list
    }
}

/// Requests per second between two heartbeats `elapsed` apart: 0 unless
/// both belong to the same run and the counter moved forward (a restarted
/// work starts it again from 0).
/// A reconnecting worker keeps what was measured of it.
fn replaced_capacity(workers: &HashMap<String, WorkerEntry>, worker_id: &str) -> Capacity {
    workers
        .get(worker_id)
        .map(|entry| entry.capacity)
        .unwrap_or_default()
}

fn rate_between(
    previous: &Heartbeat,
    next: &Heartbeat,
    elapsed: std::time::Duration,
    count: fn(&Heartbeat) -> u64,
) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if next.run_id.is_empty()
        || previous.run_id != next.run_id
        || count(next) < count(previous)
        || seconds <= 0.0
    {
        return 0.0;
    }
    (count(next) - count(previous)) as f64 / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(id: &str, cores: u32) -> Register {
        Register {
            worker_id: id.into(),
            cores,
            version: "test".into(),
            hostname: "localhost".into(),
        }
    }

    fn channel() -> Outbound {
        mpsc::channel(1).0
    }

    #[test]
    fn placement_follows_cores_until_speeds_differ() {
        // Nothing measured, or one worker only: 100 per declared core.
        assert_eq!(placement_weights(&[(2, 0.0), (4, 0.0)]), [200, 400]);
        assert_eq!(placement_weights(&[(2, 150_000.0), (4, 0.0)]), [200, 400]);
        // Speeds within 15% of each other are the same speed.
        assert_eq!(
            placement_weights(&[(2, 150_000.0), (2, 165_000.0), (1, 0.0)]),
            [200, 200, 100]
        );
        // A worker twice as fast per CPU-second takes twice the share per
        // core; an unmeasured one counts at the median speed.
        assert_eq!(
            placement_weights(&[(2, 100_000.0), (2, 200_000.0), (2, 0.0), (4, 100_000.0)]),
            [200, 400, 200, 400]
        );
        // Zero cores count as one.
        assert_eq!(placement_weights(&[(0, 0.0)]), [100]);
    }

    #[test]
    fn speed_and_shown_rate_count_requests_not_connection_rows() {
        let registry = Registry::default();
        let (conn, _) = registry.add(register("a", 1), channel());
        let beat = |requests, request_rows| Heartbeat {
            run_id: "r".into(),
            requests,
            request_rows,
            cpu_percent: 100.0,
            ..Default::default()
        };
        registry.heartbeat("a", conn, beat(0, 0));
        std::thread::sleep(std::time::Duration::from_millis(50));
        // `connection: close`: every request also recorded a new connection.
        registry.heartbeat("a", conn, beat(20_000, 10_000));
        let entry = &registry.list()[0];
        let workers = registry.workers.lock();
        let all_rows = workers["a"].rps;
        drop(workers);
        assert!(all_rows > 0.0);
        assert!(
            (entry.rps * 2.0 - all_rows).abs() < 1e-6 * all_rows,
            "{} vs {all_rows}",
            entry.rps
        );
        assert!((entry.requests_per_cpu_second - entry.rps).abs() < 1e-6 * entry.rps);
    }

    #[test]
    fn a_registry_weighs_its_workers_in_one_unit() {
        let registry = Registry::default();
        let conns: Vec<u64> = ["a", "b", "c"]
            .into_iter()
            .map(|id| registry.add(register(id, 1), channel()).0)
            .collect();
        assert_eq!(
            registry.placement_weights(&[("a", 1), ("c", 1)]),
            [100, 100]
        );
        let beat = |requests, cpu_percent| Heartbeat {
            run_id: "r".into(),
            requests,
            cpu_percent,
            ..Default::default()
        };
        for (id, conn) in [("a", conns[0]), ("b", conns[1])] {
            registry.heartbeat(id, conn, beat(0, 0.0));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Over the same ~50 ms at a full core, b completed 4x a's requests.
        registry.heartbeat("a", conns[0], beat(10_000, 100.0));
        registry.heartbeat("b", conns[1], beat(40_000, 100.0));
        let weights = registry.placement_weights(&[("a", 1), ("b", 1), ("c", 1)]);
        // b's speed is the median of the two measured: a weighs about a
        // quarter of it, c (unmeasured) counts at the median.
        assert_eq!(weights[1..], [100, 100], "{weights:?}");
        assert!((20..=30).contains(&weights[0]), "{weights:?}");
        // Asked for one worker (one joining), the unit is the same.
        assert_eq!(registry.placement_weights(&[("a", 1)]), weights[..1]);
    }

    #[test]
    fn capacity_counts_busy_intervals_and_survives_a_reconnect() {
        let mut capacity = Capacity::default();
        assert_eq!(capacity.requests_per_cpu_second(), 0.0);
        // 150,000 requests in 1 s at 80% of a core: 187,500 per CPU-second.
        capacity.add(150_000.0, 80.0, 1.0);
        assert_eq!(capacity.requests_per_cpu_second(), 187_500.0);
        // A nearly idle interval (its fixed costs dominate) does not count.
        capacity.add(10.0, 5.0, 1.0);
        assert_eq!(capacity.requests_per_cpu_second(), 187_500.0);
        // A slower busy interval pulls it down, weighted by CPU time.
        capacity.add(50_000.0, 100.0, 1.0);
        let expected = (150_000.0 * Capacity::KEEP + 50_000.0) / (0.8 * Capacity::KEEP + 1.0);
        assert!((capacity.requests_per_cpu_second() - expected).abs() < 1e-6);

        let registry = Registry::default();
        let (conn, _) = registry.add(register("a", 1), channel());
        let beat = |requests, cpu_percent| Heartbeat {
            run_id: "r".into(),
            requests,
            cpu_percent,
            ..Default::default()
        };
        registry.heartbeat("a", conn, beat(0, 0.0));
        std::thread::sleep(std::time::Duration::from_millis(50));
        registry.heartbeat("a", conn, beat(10_000, 100.0));
        let measured = registry.list()[0].requests_per_cpu_second;
        // 10,000 requests in at least 50 ms of a full core: at most 200,000
        // per CPU-second (no lower bound: the sleep may last longer).
        assert!(measured > 0.0 && measured <= 200_000.0, "{measured}");
        // The same worker reconnecting keeps what was measured.
        registry.add(register("a", 1), channel());
        assert_eq!(registry.list()[0].requests_per_cpu_second, measured);
    }

    #[test]
    fn silent_workers_expire() {
        let registry = Registry::default();
        registry.add(register("a", 1), channel());
        assert!(
            registry
                .expire(std::time::Duration::from_secs(60))
                .is_empty()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        let expired = registry.expire(std::time::Duration::ZERO);
        assert_eq!(expired.len(), 1);
        assert!(registry.is_empty());
    }

    #[test]
    fn reconnect_replaces_and_old_cleanup_is_ignored() {
        let registry = Registry::default();
        let (old, _) = registry.add(register("w1", 2), channel());
        let (new, replaced) = registry.add(register("w1", 2), channel());
        assert_eq!(replaced.map(|e| e.conn), Some(old));
        assert!(registry.remove("w1", old).is_none());
        assert_eq!(registry.len(), 1);
        assert!(registry.remove("w1", new).is_some());
        assert!(registry.is_empty());
    }

    #[test]
    fn claims_only_idle_workers() {
        let registry = Registry::default();
        let (c1, _) = registry.add(register("b", 2), channel());
        registry.add(register("a", 1), channel());
        let (c3, _) = registry.add(register("c", 1), channel());
        // "c" still runs a run from an earlier controller.
        registry.heartbeat(
            "c",
            c3,
            Heartbeat {
                run_id: "old".into(),
                active_users: 3,
                ..Default::default()
            },
        );
        let claimed = registry.claim_idle("r1");
        let ids: Vec<&str> = claimed.iter().map(|c| c.worker_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(registry.claim_idle("r2").is_empty());

        registry.heartbeat(
            "b",
            c1,
            Heartbeat {
                run_id: "r1".into(),
                active_users: 5,
                ..Default::default()
            },
        );
        assert_eq!(registry.active_users("r1"), 5);
        registry.heartbeat(
            "b",
            c1,
            Heartbeat {
                run_id: "r1".into(),
                active_users: 5,
                requests: 1_000_000,
                ..Default::default()
            },
        );
        assert!(registry.list()[1].rps > 0.0);
        registry.work_done("b", c1, "r1");
        assert_eq!(registry.active_users("r1"), 0);
        assert_eq!(registry.list()[1].rps, 0.0, "idle after WorkDone");
        registry.release("r1", ["a", "b"]);
        assert!(!registry.claim("c", "r2"), "c is busy with another run");
        assert!(registry.claim("c", "old"), "c may rejoin its own run");
        assert!(registry.claim("a", "r2"));
        assert!(!registry.claim("zz", "r2"), "unknown worker");
        registry.release("r2", ["a"]);
        registry.release("old", ["c"]);
        assert_eq!(registry.claim_idle("r2").len(), 2);
        let list = registry.list();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].run_id, "old");
    }
}
