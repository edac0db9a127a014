//! `abort_on_fail`: while a run with such thresholds is running, its life
//! cycle task asks the collector for the live results (`GetRunStats`, the
//! same merged numbers `WatchRun` shows) every
//! [`threshold_check_interval`](crate::ControllerConfig::threshold_check_interval)
//! and stops the run, as `StopRun` would, at the first failing one whose
//! delay has passed.

use std::time::Duration;

use cicada_proto::v1::{GetRunStatsRequest, ThresholdResult};

use crate::Shared;

/// Why the run must stop, if a threshold with `abort_on_fail` fails after
/// its delay. A threshold with nothing measured yet never aborts.
pub fn abort_reason(results: &[ThresholdResult], elapsed: Duration) -> Option<String> {
    results
        .iter()
        .find(|t| {
            t.abort_on_fail
                && !t.passed
                && t.observed.is_some()
                && elapsed >= Duration::from_millis(t.delay_ms)
        })
        .map(|t| {
            let scope = if t.endpoint.is_empty() {
                String::new()
            } else {
                format!("{}: ", t.endpoint)
            };
            format!(
                "threshold failed: {scope}{} (observed {})",
                t.expression, t.observed_text
            )
        })
}

/// Asks the collector for the live results of `run_id` and returns why the
/// run must stop, if it must. Collector trouble never stops a run.
pub(crate) async fn check(shared: &Shared, run_id: &str, elapsed: Duration) -> Option<String> {
    let mut collector = shared.collector.clone();
    let request = GetRunStatsRequest {
        run_id: run_id.to_owned(),
    };
    let timeout = shared.config.threshold_check_interval;
    match tokio::time::timeout(timeout, collector.get_run_stats(request)).await {
        Ok(Ok(response)) => abort_reason(&response.into_inner().thresholds, elapsed),
        Ok(Err(status)) => {
            tracing::debug!(run_id, %status, "thresholds not checked");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(passed: bool, observed: Option<f64>, delay_ms: u64) -> ThresholdResult {
        ThresholdResult {
            expression: "p95 < 150ms".into(),
            endpoint: String::new(),
            observed,
            observed_text: "180.2 ms".into(),
            passed,
            abort_on_fail: true,
            delay_ms,
        }
    }

    #[test]
    fn aborts_on_a_failed_abort_threshold_after_its_delay() {
        let second = Duration::from_secs(1);
        assert_eq!(
            abort_reason(&[result(false, Some(180.2), 1000)], second).as_deref(),
            Some("threshold failed: p95 < 150ms (observed 180.2 ms)")
        );
        // Not before the delay, not without a value, not when passing.
        assert_eq!(
            abort_reason(&[result(false, Some(180.2), 1001)], second),
            None
        );
        assert_eq!(abort_reason(&[result(false, None, 0)], second), None);
        assert_eq!(abort_reason(&[result(true, Some(1.0), 0)], second), None);
        // Only thresholds that ask for it.
        let plain = ThresholdResult {
            abort_on_fail: false,
            ..result(false, Some(180.2), 0)
        };
        assert_eq!(abort_reason(&[plain], second), None);
        let endpoint = ThresholdResult {
            endpoint: "POST /metrics".into(),
            ..result(false, Some(180.2), 0)
        };
        assert_eq!(
            abort_reason(&[endpoint], second).as_deref(),
            Some("threshold failed: POST /metrics: p95 < 150ms (observed 180.2 ms)")
        );
    }
}
