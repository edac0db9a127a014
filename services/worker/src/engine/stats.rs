//! Per-thread stats shards. Only the owning thread records into a shard; the
//! mutex exists for `cut`, which swaps the shard out once a second.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{CheckCount, EndpointInterval, FailureKindCount, Interval};

/// One thread's shard and gauges.
pub(crate) struct ThreadStats {
    shard: Mutex<Vec<EndpointInterval>>,
    /// Written only by the owning thread; read by `Engine::in_flight`.
    in_flight: AtomicU64,
    active_users: AtomicU32,
    /// Open model: iterations due but not started (no free virtual user)
    /// since the last cut. Written only by the owning thread.
    dropped: AtomicU64,
    /// Open model: arrivals this thread has handled (started or dropped)
    /// since the engine started; never reset.
    arrivals: AtomicU64,
    /// Rows completed since the engine started (requests, groups, new
    /// connections: what the deltas count); never reset. Written only by
    /// the owning thread.
    completed: AtomicU64,
    /// Of `completed`, the requests alone.
    requests: AtomicU64,
}

/// A completed request's latency in microseconds. In the open model `us` is
/// measured from the intended start (coordinated-omission corrected) and
/// `uncorrected_us` from the actual send; in the closed model the latter is
/// `None` and nothing goes to the uncorrected histogram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latency {
    pub us: u64,
    pub uncorrected_us: Option<u64>,
}

/// A failed request's kind and message.
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// Failure kinds; `Status` is rendered as `status 503`.
pub(crate) enum FailureKind {
    Status(u16),
    Timeout,
    Connect,
    /// The target's address is outside the controller's `--allow-target`
    /// list: nothing was sent.
    Disallowed,
    /// The TLS handshake of a new connection failed.
    Tls,
    Connection,
    Extract,
    Check,
    /// A group's step failed.
    Step,
    Request,
}

impl FailureKind {
    fn matches(&self, kind: &str) -> bool {
        match self {
            FailureKind::Status(code) => {
                kind.strip_prefix("status ")
                    .and_then(|c| c.parse::<u16>().ok())
                    == Some(*code)
            }
            other => kind == other.static_name(),
        }
    }

    fn static_name(&self) -> &'static str {
        match self {
            FailureKind::Status(_) => "status",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::Disallowed => "disallowed",
            FailureKind::Tls => "tls",
            FailureKind::Connection => "connection",
            FailureKind::Extract => "extract",
            FailureKind::Check => "check",
            FailureKind::Step => "step",
            FailureKind::Request => "request",
        }
    }

    fn name(&self) -> String {
        match self {
            FailureKind::Status(code) => format!("status {code}"),
            other => other.static_name().to_owned(),
        }
    }
}

fn empty_shard(endpoints: usize) -> Vec<EndpointInterval> {
    (0..endpoints)
        .map(|_| EndpointInterval::default())
        .collect()
}

impl ThreadStats {
    pub fn new(endpoints: usize) -> ThreadStats {
        ThreadStats {
            shard: Mutex::new(empty_shard(endpoints)),
            in_flight: AtomicU64::new(0),
            active_users: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
            arrivals: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Rows completed (failed or not) since the engine started.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Requests completed (failed or not) since the engine started.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn active_users(&self) -> u32 {
        self.active_users.load(Ordering::Relaxed)
    }

    /// Only called on the owning thread (single writer).
    pub fn add_active_users(&self, delta: i32) {
        let now = self.active_users.load(Ordering::Relaxed);
        self.active_users
            .store(now.saturating_add_signed(delta), Ordering::Relaxed);
    }

    /// Counts one arrival handled (started or dropped). Single writer.
    pub fn add_arrival(&self) {
        let n = self.arrivals.load(Ordering::Relaxed);
        self.arrivals.store(n + 1, Ordering::Relaxed);
    }

    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }

    /// Counts one iteration that was due but could not start.
    pub fn add_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, endpoint: usize, latency: Latency, bytes: u64, failure: Option<Failure>) {
        let mut shard = self.shard.lock();
        let Some(e) = shard.get_mut(endpoint) else {
            return;
        };
        e.counts.requests += 1;
        e.counts.bytes += bytes;
        // Single writer: a plain store is enough, readers only sample it.
        let n = self.completed.load(Ordering::Relaxed);
        self.completed.store(n + 1, Ordering::Relaxed);
        e.histogram.record_us(latency.us);
        if let Some(uncorrected) = latency.uncorrected_us {
            e.uncorrected.record_us(uncorrected);
        }
        if let Some(failure) = failure {
            e.counts.failures += 1;
            match e
                .failures_by_kind
                .iter_mut()
                .find(|f| failure.kind.matches(&f.kind))
            {
                Some(entry) => {
                    entry.count += 1;
                    entry.last_message = failure.message;
                }
                None => e.failures_by_kind.push(FailureKindCount {
                    kind: failure.kind.name(),
                    count: 1,
                    last_message: failure.message,
                }),
            }
        }
    }

    /// Records one group's duration (its row counts with the requests in
    /// `completed`, like every row the deltas carry).
    pub fn record_group(&self, endpoint: usize, latency: Latency, failure: Option<Failure>) {
        self.record(endpoint, latency, 0, failure);
    }

    /// Records one new connection's connect (or TLS handshake) time on a
    /// connection row.
    pub fn record_connection(&self, endpoint: usize, us: u64, failure: Option<Failure>) {
        let latency = Latency {
            us,
            uncorrected_us: None,
        };
        self.record(endpoint, latency, 0, failure);
    }

    /// Counts the outcomes of one response's checks, `(check, passed)`.
    pub fn record_checks(&self, endpoint: usize, outcomes: impl Iterator<Item = (u32, bool)>) {
        let mut shard = self.shard.lock();
        let Some(e) = shard.get_mut(endpoint) else {
            return;
        };
        for (check, passed) in outcomes {
            CheckCount::add(&mut e.checks, check, u64::from(passed), u64::from(!passed));
        }
    }

    fn cancel(&self, endpoint: usize) {
        if let Some(e) = self.shard.lock().get_mut(endpoint) {
            e.counts.cancelled += 1;
        }
    }
}

/// A request on the wire. It must be finished with [`InFlight::finish`];
/// if it is dropped instead (the user was aborted at the end of the grace
/// period) it counts as cancelled, so no request is ever lost.
pub(crate) struct InFlight<'a> {
    stats: &'a ThreadStats,
    endpoint: usize,
    finished: bool,
}

impl<'a> InFlight<'a> {
    pub fn start(stats: &'a ThreadStats, endpoint: usize) -> InFlight<'a> {
        // Single writer: a plain load/store is enough and avoids a locked RMW.
        let n = stats.in_flight.load(Ordering::Relaxed);
        stats.in_flight.store(n + 1, Ordering::Relaxed);
        InFlight {
            stats,
            endpoint,
            finished: false,
        }
    }

    /// The request was never sent (the run stopped first): nothing is
    /// recorded.
    pub fn unsent(mut self) {
        self.finished = true;
    }

    pub fn finish(mut self, latency: Latency, bytes: u64, failure: Option<Failure>) {
        self.stats.record(self.endpoint, latency, bytes, failure);
        // Single writer: a plain store is enough, readers only sample it.
        let n = self.stats.requests.load(Ordering::Relaxed);
        self.stats.requests.store(n + 1, Ordering::Relaxed);
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.cancel(self.endpoint);
        }
        let n = self.stats.in_flight.load(Ordering::Relaxed);
        self.stats
            .in_flight
            .store(n.saturating_sub(1), Ordering::Relaxed);
    }
}

/// Swaps every thread's shard for an empty one and merges them.
pub(crate) fn cut(threads: &[std::sync::Arc<ThreadStats>], endpoints: usize) -> Interval {
    let mut total = empty_shard(endpoints);
    let mut dropped = 0;
    for thread in threads {
        dropped += thread.dropped.swap(0, Ordering::Relaxed);
        // Allocate the replacement outside the lock so the owning thread
        // waits only for the swap.
        let mut taken = empty_shard(endpoints);
        std::mem::swap(&mut *thread.shard.lock(), &mut taken);
        for (sum, part) in total.iter_mut().zip(taken) {
            sum.counts.add(&part.counts);
            if !part.histogram.is_empty() {
                // Both are auto-resizing microsecond histograms: merge cannot fail.
                let _ = sum.histogram.merge(&part.histogram);
            }
            if !part.uncorrected.is_empty() {
                let _ = sum.uncorrected.merge(&part.uncorrected);
            }
            for failure in part.failures_by_kind {
                match sum
                    .failures_by_kind
                    .iter_mut()
                    .find(|f| f.kind == failure.kind)
                {
                    Some(entry) => {
                        entry.count += failure.count;
                        entry.last_message = failure.last_message;
                    }
                    None => sum.failures_by_kind.push(failure),
                }
            }
            for check in part.checks {
                CheckCount::add(&mut sum.checks, check.check, check.passed, check.failed);
            }
        }
    }
    Interval {
        endpoints: total,
        dropped,
    }
}
