//! Exponential backoff with a cap and jitter, for redialing the controller
//! and re-pushing deltas.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `initial` up to `max`, each shortened by up to a
/// quarter at random so that many workers do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::rng().random_range(0.0..0.25);
        base.mul_f64(1.0 - jitter)
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1_000));
        let bases = [100, 200, 400, 800, 1_000, 1_000];
        for base in bases {
            let delay = backoff.next_delay();
            assert!(
                delay <= ms(base) && delay > ms(base) * 3 / 4,
                "{delay:?} for {base}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }
}
