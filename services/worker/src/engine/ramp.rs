//! The ramp: which class each next user belongs to, and when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Load;
use super::thread::Command;

/// Yields class indexes so that every prefix holds the classes in
/// proportion to `counts` (smooth weighted round robin), ending with exactly
/// `counts[i]` of class `i`.
pub(crate) struct Interleave {
    counts: Vec<u64>,
    left: Vec<u64>,
    current: Vec<i128>,
    total: u64,
}

impl Interleave {
    pub fn new(counts: &[u32]) -> Interleave {
        let counts: Vec<u64> = counts.iter().map(|&c| u64::from(c)).collect();
        Interleave {
            left: counts.clone(),
            current: vec![0; counts.len()],
            total: counts.iter().sum(),
            counts,
        }
    }
}

impl Iterator for Interleave {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for i in 0..self.counts.len() {
            if self.left[i] == 0 {
                continue;
            }
            self.current[i] += i128::from(self.counts[i]);
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let pick = best?;
        self.current[pick] -= i128::from(self.total);
        self.left[pick] -= 1;
        Some(pick)
    }
}

/// When user `k` (0-based) starts, relative to the ramp's start.
pub(crate) fn start_offset(k: u64, spawn_rate: f64) -> Duration {
    if spawn_rate.is_finite() && spawn_rate > 0.0 {
        Duration::from_secs_f64(k as f64 / spawn_rate)
    } else {
        Duration::ZERO
    }
}

/// Hands users to the threads round robin at the spawn rate.
pub(crate) async fn spawner(
    load: Load,
    threads: Vec<mpsc::UnboundedSender<Command>>,
    spawned: Arc<AtomicU64>,
) {
    let start = tokio::time::Instant::now();
    for (k, class) in (0u64..).zip(Interleave::new(&load.class_users)) {
        let at = start_offset(k, load.spawn_rate);
        if !at.is_zero() {
            tokio::time::sleep_until(start + at).await;
        }
        let thread = &threads[usize::try_from(k % threads.len() as u64).unwrap_or(0)];
        let user_id = load.user_id_offset + k;
        if thread.send(Command::Spawn { class, user_id }).is_err() {
            return;
        }
        spawned.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_keeps_the_mix_in_every_prefix() {
        let counts = [6u32, 3, 1];
        let order: Vec<usize> = Interleave::new(&counts).collect();
        assert_eq!(order.len(), 10);
        for (class, &count) in counts.iter().enumerate() {
            assert_eq!(
                order.iter().filter(|&&c| c == class).count(),
                count as usize
            );
        }
        for prefix in 1..=order.len() {
            for (class, &count) in counts.iter().enumerate() {
                let have = order[..prefix].iter().filter(|&&c| c == class).count() as f64;
                let want = prefix as f64 * f64::from(count) / 10.0;
                assert!(
                    (have - want).abs() <= 1.0,
                    "prefix {prefix} class {class}: {order:?}"
                );
            }
        }
        assert_eq!(Interleave::new(&[0, 2, 0]).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(Interleave::new(&[]).count(), 0);
    }

    #[test]
    fn users_start_at_the_spawn_rate() {
        assert_eq!(start_offset(0, 10.0), Duration::ZERO);
        assert_eq!(start_offset(5, 10.0), Duration::from_millis(500));
        assert_eq!(start_offset(5, 0.0), Duration::ZERO);
        assert_eq!(start_offset(5, f64::INFINITY), Duration::ZERO);
    }
}
