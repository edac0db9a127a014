//! The per-endpoint numbers cicada reports, computed from exact counts and a
//! merged histogram.

use crate::LatencyHistogram;

/// Exact counters that travel next to a histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Completed requests (successes and failures).
    pub requests: u64,
    pub failures: u64,
    /// Sent but cancelled before a response arrived.
    pub cancelled: u64,
    /// Response body bytes.
    pub bytes: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.cancelled += other.cancelled;
        self.bytes += other.bytes;
    }
}

/// Summary of one endpoint (or the total) over a period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub counts: Counts,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
    pub mean_ms: f64,
    /// Mean response body size in bytes.
    pub avg_size: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Summary {
    /// Summarises `counts` and `histogram` observed over `duration_s` seconds.
    pub fn new(counts: Counts, histogram: &LatencyHistogram, duration_s: f64) -> Self {
        let rps = if duration_s > 0.0 {
            counts.requests as f64 / duration_s
        } else {
            0.0
        };
        let avg_size = if counts.requests > 0 {
            counts.bytes as f64 / counts.requests as f64
        } else {
            0.0
        };
        Self {
            counts,
            rps,
            p50_ms: ms(histogram.value_at_quantile_us(0.50)),
            p90_ms: ms(histogram.value_at_quantile_us(0.90)),
            p95_ms: ms(histogram.value_at_quantile_us(0.95)),
            p99_ms: ms(histogram.value_at_quantile_us(0.99)),
            p999_ms: ms(histogram.value_at_quantile_us(0.999)),
            max_ms: ms(histogram.max_us()),
            min_ms: ms(histogram.min_us()),
            mean_ms: histogram.mean_us() / 1000.0,
            avg_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut h = LatencyHistogram::new();
        for v in 1..=1000u64 {
            h.record_us(v * 1000);
        }
        let counts = Counts {
            requests: 1000,
            failures: 10,
            cancelled: 0,
            bytes: 3000,
        };
        let s = Summary::new(counts, &h, 10.0);
        assert_eq!(s.rps, 100.0);
        assert_eq!(s.avg_size, 3.0);
        assert!((s.p50_ms - 500.0).abs() < 0.5, "{}", s.p50_ms);
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{}", s.p99_ms);
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{}", s.max_ms);
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = Summary::new(Counts::default(), &LatencyHistogram::new(), 0.0);
        assert_eq!(s, Summary::default());
    }
}
