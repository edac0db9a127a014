//! The ramp: which class each next user belongs to, and when it starts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

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

/// One move of the ramp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start(usize),
    Retire(usize),
}

/// The moves from `live` users per class to `target`: retirements first
/// (interleaved across classes), then starts, so the class mix holds
/// throughout.
fn steps(live: &[u32], target: &[u32]) -> impl Iterator<Item = Step> + use<> {
    let surplus: Vec<u32> = live
        .iter()
        .zip(target)
        .map(|(l, t)| l.saturating_sub(*t))
        .collect();
    let deficit: Vec<u32> = live
        .iter()
        .zip(target)
        .map(|(l, t)| t.saturating_sub(*l))
        .collect();
    Interleave::new(&surplus)
        .map(Step::Retire)
        .chain(Interleave::new(&deficit).map(Step::Start))
}

/// Moves the users toward the latest `load` at its spawn rate, one user at a
/// time: starting users round robin over the threads, retiring them from the
/// thread with the most users of that class. A new `load` takes over at once
/// from wherever the ramp is.
pub(crate) async fn spawner(
    mut load: watch::Receiver<Load>,
    threads: Vec<mpsc::UnboundedSender<Command>>,
    spawned: Arc<AtomicU64>,
) {
    let classes = load.borrow().class_users.len();
    // Users per (thread, class) as the ramp placed them.
    let mut placed = vec![vec![0u32; classes]; threads.len()];
    let mut next_thread = 0usize;
    loop {
        let target = load.borrow_and_update().clone();
        let live: Vec<u32> = (0..classes)
            .map(|class| placed.iter().map(|per_thread| per_thread[class]).sum())
            .collect();
        let start = tokio::time::Instant::now();
        let mut next_user_id = target.user_id_offset;
        let mut changed = false;
        for (k, step) in (0u64..).zip(steps(&live, &target.class_users)) {
            let at = start_offset(k, target.spawn_rate);
            if !at.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep_until(start + at) => {}
                    result = load.changed() => {
                        if result.is_err() {
                            return;
                        }
                        changed = true;
                        break;
                    }
                }
            }
            let sent = match step {
                Step::Start(class) => {
                    let thread = next_thread;
                    next_thread = (next_thread + 1) % threads.len();
                    let user_id = next_user_id;
                    next_user_id += 1;
                    placed[thread][class] += 1;
                    spawned.fetch_add(1, Ordering::Relaxed);
                    threads[thread].send(Command::Spawn { class, user_id })
                }
                Step::Retire(class) => {
                    let Some(thread) = (0..threads.len()).max_by_key(|&t| placed[t][class]) else {
                        return;
                    };
                    placed[thread][class] -= 1;
                    threads[thread].send(Command::Retire { class })
                }
            };
            if sent.is_err() {
                return;
            }
        }
        if !changed && load.changed().await.is_err() {
            return;
        }
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

    #[test]
    fn steps_retire_surplus_then_start_deficit() {
        let moves: Vec<Step> = steps(&[3, 0, 2], &[1, 2, 2]).collect();
        assert_eq!(
            moves,
            [
                Step::Retire(0),
                Step::Retire(0),
                Step::Start(1),
                Step::Start(1)
            ]
        );
        assert_eq!(steps(&[2, 2], &[2, 2]).count(), 0);
    }
}
