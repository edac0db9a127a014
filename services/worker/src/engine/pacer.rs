//! The worker's limit of new connections per second (`connection: {rate}`,
//! this worker's share): every thread's users take their turn from one
//! schedule, so the limit holds however the users are spread.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::{Duration, Instant};

/// Hands out connect slots at most `rate` per second (no limit at 0).
pub(crate) struct ConnectPacer {
    epoch: Instant,
    /// Nanoseconds between two connects; 0 = no limit.
    interval_ns: AtomicU64,
    /// The next free slot, in nanoseconds since `epoch`.
    next_ns: AtomicU64,
}

/// Slots are never handed out further back than this: a limiter that was
/// idle lets at most this much of a burst through at once.
const BURST: Duration = Duration::from_millis(10);

impl ConnectPacer {
    pub fn new(rate: f64) -> ConnectPacer {
        let pacer = ConnectPacer {
            epoch: Instant::now(),
            interval_ns: AtomicU64::new(0),
            next_ns: AtomicU64::new(0),
        };
        pacer.set_rate(rate);
        pacer
    }

    /// New connections per second from now on (0 or not finite: no limit).
    pub fn set_rate(&self, rate: f64) {
        let interval = if rate.is_finite() && rate > 0.0 {
            (1e9 / rate).clamp(1.0, u64::MAX as f64) as u64
        } else {
            0
        };
        self.interval_ns.store(interval, Ordering::Relaxed);
    }

    /// Whether a limit is set (so callers can skip finding out whether they
    /// are about to connect).
    pub fn is_limited(&self) -> bool {
        self.interval_ns.load(Ordering::Relaxed) != 0
    }

    /// When the caller may connect: now, or the next free slot (taken).
    pub fn reserve(&self) -> Option<Instant> {
        let interval = self.interval_ns.load(Ordering::Relaxed);
        if interval == 0 {
            return None;
        }
        let now = self.epoch.elapsed().as_nanos() as u64;
        let floor = now.saturating_sub(BURST.as_nanos() as u64);
        let mut next = self.next_ns.load(Ordering::Relaxed);
        loop {
            let slot = next.max(floor);
            match self.next_ns.compare_exchange_weak(
                next,
                slot + interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return (slot > now).then(|| self.epoch + Duration::from_nanos(slot));
                }
                Err(current) => next = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_rate() {
        let pacer = ConnectPacer::new(100.0);
        let start = Instant::now();
        // The first connects of an idle limiter go at once (its burst
        // allowance), then one slot every 10 ms.
        let slots: Vec<Duration> = (0..5)
            .map(|_| pacer.reserve().map_or(Duration::ZERO, |at| at - start))
            .collect();
        assert_eq!(slots[0], Duration::ZERO);
        for pair in slots.windows(2).skip(1) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(10));
        }
        // 200 connects at 100/s take about 2 s of slots.
        let last = (0..200).filter_map(|_| pacer.reserve()).last().unwrap();
        let span = last - start;
        assert!(span >= Duration::from_millis(2000) && span <= Duration::from_millis(2050));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_at_zero_and_changes_apply() {
        let pacer = ConnectPacer::new(0.0);
        assert!((0..1000).all(|_| pacer.reserve().is_none()));
        pacer.set_rate(10.0);
        let first = pacer.reserve();
        let second = pacer.reserve().expect("the second waits");
        assert!(second - first.unwrap_or_else(Instant::now) >= Duration::from_millis(99));
        pacer.set_rate(0.0);
        assert!(pacer.reserve().is_none());
    }
}
