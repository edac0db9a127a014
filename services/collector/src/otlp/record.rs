//! Applied deltas into OpenTelemetry instruments.
//!
//! Latency: the workers send per-second HdrHistograms, not single values, so
//! each distinct recorded value of the delta (an HDR bucket, 3 significant
//! digits) is recorded into an explicit-bucket OTel histogram as many times as
//! it was counted. Bucket counts and the total count are therefore exact; the
//! sum is exact to the HDR resolution (0.1%). Explicit boundaries rather than
//! exponential ones: the boundaries include the latency goals people set
//! (100, 150, 200 ms ...), so "share of requests under 150 ms" reads exactly
//! off the buckets in Cloud Monitoring, and they stay the same across runs so
//! distributions of different runs compare bucket by bucket.

use std::collections::HashMap;

use cicada_store::Delta;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

use super::RunMeta;

/// Completed requests (monotonic counter), by status class.
pub const REQUESTS: &str = "cicada.requests";
/// Failed requests (monotonic counter), by status class.
pub const FAILURES: &str = "cicada.failures";
/// Latency of completed requests in milliseconds (explicit-bucket histogram).
pub const LATENCY: &str = "cicada.latency";
/// Users running over all workers in the last complete second (gauge).
pub const ACTIVE_USERS: &str = "cicada.users.active";
/// Closed model: configured users (gauge).
pub const TARGET_USERS: &str = "cicada.users.target";
/// Open model: configured arrival rate per second (gauge).
pub const TARGET_RATE: &str = "cicada.rate.target";

/// Bucket boundaries of [`LATENCY`], in milliseconds.
pub const LATENCY_BOUNDARIES_MS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0,
    750.0, 1_000.0, 1_500.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0,
];

/// The status class of a failure kind: `5xx` for `status 503`, otherwise
/// the kind itself (`connect`, `timeout`, `body`, `extract`, ...).
pub(crate) fn failure_class(kind: &str) -> String {
    match kind.strip_prefix("status ") {
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}xx", &code[..1])
        }
        _ => kind.to_owned(),
    }
}

/// Users of one second summed over workers.
#[derive(Default)]
struct UsersSecond {
    second: i64,
    users: u64,
}

pub(super) struct Instruments {
    requests: Counter<u64>,
    failures: Counter<u64>,
    latency: Histogram<f64>,
    active_users: Gauge<u64>,
    target_users: Gauge<u64>,
    target_rate: Gauge<f64>,
    /// Per run: the latest second seen and the one before it (complete).
    users: HashMap<String, [UsersSecond; 2]>,
}

impl Instruments {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            requests: meter
                .u64_counter(REQUESTS)
                .with_unit("{request}")
                .with_description("completed requests")
                .build(),
            failures: meter
                .u64_counter(FAILURES)
                .with_unit("{request}")
                .with_description("failed requests")
                .build(),
            latency: meter
                .f64_histogram(LATENCY)
                .with_unit("ms")
                .with_description("latency of completed requests")
                .with_boundaries(LATENCY_BOUNDARIES_MS.to_vec())
                .build(),
            active_users: meter
                .u64_gauge(ACTIVE_USERS)
                .with_unit("{user}")
                .with_description("users running over all workers")
                .build(),
            target_users: meter
                .u64_gauge(TARGET_USERS)
                .with_unit("{user}")
                .with_description("configured users (closed model)")
                .build(),
            target_rate: meter
                .f64_gauge(TARGET_RATE)
                .with_unit("{request}/s")
                .with_description("configured arrival rate (open model)")
                .build(),
            users: HashMap::new(),
        }
    }

    pub(super) fn record(&mut self, meta: &RunMeta, delta: &Delta) {
        let run = [
            KeyValue::new("run_id", meta.run_id.clone()),
            KeyValue::new("scenario", meta.scenario.clone()),
        ];
        for endpoint in &delta.endpoints {
            let Some((method, name)) = meta.endpoints.get(endpoint.endpoint as usize) else {
                continue;
            };
            // `cicada.requests` counts requests; a group's rows are not.
            if !cicada_store::is_request_method(method) {
                continue;
            }
            let attributes = |status_class: String| {
                let mut kv = run.to_vec();
                kv.push(KeyValue::new("endpoint", name.clone()));
                kv.push(KeyValue::new("method", method.clone()));
                kv.push(KeyValue::new("status_class", status_class));
                kv
            };
            let counts = &endpoint.counts;
            let successes = counts.requests.saturating_sub(counts.failures);
            if successes > 0 {
                self.requests.add(successes, &attributes("success".into()));
            }
            let mut classified = 0;
            for failure in &endpoint.failures {
                let kv = attributes(failure_class(&failure.kind));
                self.requests.add(failure.count, &kv);
                self.failures.add(failure.count, &kv);
                classified += failure.count;
            }
            // Failures without a kind still count, so the counter over all
            // status classes equals the stored requests exactly.
            let rest = counts.failures.saturating_sub(classified);
            if rest > 0 {
                let kv = attributes("error".into());
                self.requests.add(rest, &kv);
                self.failures.add(rest, &kv);
            }
            let mut kv = run.to_vec();
            kv.push(KeyValue::new("endpoint", name.clone()));
            kv.push(KeyValue::new("method", method.clone()));
            for (value_us, count) in endpoint.histogram.iter_recorded() {
                let ms = value_us as f64 / 1000.0;
                for _ in 0..count {
                    self.latency.record(ms, &kv);
                }
            }
        }
        if let Some(users) = meta.target_users {
            self.target_users.record(users, &run);
        }
        if let Some(rate) = meta.target_rate {
            self.target_rate.record(rate, &run);
        }
        self.record_users(meta, delta, &run);
    }

    /// Sums active users per second over workers and records the sum of the
    /// last complete second (the one before the latest seen).
    fn record_users(&mut self, meta: &RunMeta, delta: &Delta, run: &[KeyValue]) {
        let [previous, latest] = self.users.entry(meta.run_id.clone()).or_default();
        let users = u64::from(delta.active_users);
        if delta.second > latest.second {
            *previous = std::mem::replace(
                latest,
                UsersSecond {
                    second: delta.second,
                    users,
                },
            );
            if previous.second > 0 {
                self.active_users.record(previous.users, run);
            }
        } else if delta.second == latest.second {
            latest.users += users;
        } else if delta.second == previous.second {
            previous.users += users;
            self.active_users.record(previous.users, run);
        }
    }

    /// Forgets a run's per-second user sums (the run ended).
    pub(super) fn forget(&mut self, run_id: &str) {
        self.users.remove(run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_map_to_status_classes() {
        assert_eq!(failure_class("status 503"), "5xx");
        assert_eq!(failure_class("status 404"), "4xx");
        assert_eq!(failure_class("timeout"), "timeout");
        assert_eq!(failure_class("status abc"), "status abc");
    }
}
