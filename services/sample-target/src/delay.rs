//! Precise injected delays.
//!
//! Tokio's timer wheel ticks in whole milliseconds and rounds deadlines up, so
//! `tokio::time::sleep(20ms)` answers after 21-22 ms: a calibration target
//! must not add its own 10% to the latency it claims to inject. One timer
//! thread keeps the pending deadlines in a heap and sleeps on a condition
//! variable (the OS's nanosecond timer) until the earliest one, then wakes
//! the waiting requests: overshoot is tens of microseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

#[derive(Debug)]
struct Pending {
    deadline: Instant,
    /// Tie-breaker so entries with the same deadline need no ordering of senders.
    id: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.id) == (other.deadline, other.id)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.id).cmp(&(other.deadline, other.id))
    }
}

#[derive(Debug, Default)]
struct Queue {
    heap: Mutex<(BinaryHeap<Reverse<Pending>>, u64)>,
    changed: Condvar,
}

/// Handle to the timer thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct DelayQueue {
    queue: Arc<Queue>,
}

impl DelayQueue {
    pub fn new() -> Self {
        let queue = Arc::new(Queue::default());
        let weak = Arc::downgrade(&queue);
        std::thread::Builder::new()
            .name("delay-timer".into())
            .spawn(move || timer_loop(weak))
            .expect("failed to spawn the delay timer thread");
        Self { queue }
    }

    /// Waits `delay` with sub-millisecond precision.
    pub async fn sleep(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut guard = self
                .queue
                .heap
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (heap, next_id) = &mut *guard;
            *next_id += 1;
            heap.push(Reverse(Pending {
                deadline: Instant::now() + delay,
                id: *next_id,
                wake,
            }));
        }
        self.queue.changed.notify_one();
        let _ = woken.await;
    }
}

impl Drop for DelayQueue {
    fn drop(&mut self) {
        // Wake the thread so it notices when this was the last handle.
        self.queue.changed.notify_one();
    }
}

fn timer_loop(queue: Weak<Queue>) {
    // Re-check the handle count at least this often.
    const IDLE_CHECK: Duration = Duration::from_millis(200);
    loop {
        let Some(queue) = queue.upgrade() else { return };
        let mut guard = queue.heap.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while guard.0.peek().is_some_and(|next| next.0.deadline <= now) {
            if let Some(Reverse(due)) = guard.0.pop() {
                // The request may be gone (client hung up): nothing to wake.
                let _ = due.wake.send(());
            }
        }
        let wait = guard
            .0
            .peek()
            .map_or(IDLE_CHECK, |next| next.0.deadline - now)
            .min(IDLE_CHECK);
        // Only the thread holds a strong count while waiting if no handle is
        // left; the timeout bounds how long it lingers then.
        let _ = queue
            .changed
            .wait_timeout(guard, wait)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delays_in_deadline_order_and_not_early() {
        let queue = DelayQueue::new();
        let started = Instant::now();
        let (a, b) = tokio::join!(
            async {
                queue.sleep(Duration::from_millis(30)).await;
                Instant::now()
            },
            async {
                queue.sleep(Duration::from_millis(10)).await;
                Instant::now()
            }
        );
        assert!(b < a, "the shorter delay ends first");
        assert!(b - started >= Duration::from_millis(10));
        assert!(a - started >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn zero_delay_returns_at_once() {
        DelayQueue::new().sleep(Duration::ZERO).await;
    }
}
