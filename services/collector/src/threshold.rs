//! Thresholds checked on the run's merged histograms: exact across workers,
//! per endpoint or over every endpoint merged.

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_proto::v1;
use cicada_scenario::{Expr, Metric};
use cicada_store::{Endpoint, ThresholdDef, ThresholdOutcome};

/// A threshold of a run, parsed and resolved against its endpoint table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RunThreshold {
    pub def: ThresholdDef,
    pub expr: Expr,
    /// Index in the endpoint table; `None` for every endpoint together.
    pub endpoint: Option<usize>,
}

impl RunThreshold {
    /// Parses `def` and finds its endpoint in `endpoints`; the error says
    /// what is wrong.
    pub(crate) fn resolve(def: ThresholdDef, endpoints: &[Endpoint]) -> Result<Self, String> {
        let expr = Expr::parse(&def.expression)
            .map_err(|error| format!("threshold {:?}: {error}", def.expression))?;
        let endpoint = match &def.endpoint {
            None => None,
            Some(text) => Some(
                endpoints
                    .iter()
                    .position(|e| {
                        text.trim().split_once(' ').is_some_and(|(method, name)| {
                            method == e.method && name.trim_start() == e.name
                        })
                    })
                    .ok_or_else(|| {
                        format!(
                            "threshold {:?} names endpoint {text:?}, which is not in the run's endpoint table",
                            def.expression
                        )
                    })?,
            ),
        };
        Ok(Self {
            def,
            expr,
            endpoint,
        })
    }
}

/// Resolves every threshold of a run, in order.
pub(crate) fn resolve_all(
    defs: &[ThresholdDef],
    endpoints: &[Endpoint],
) -> Result<Vec<RunThreshold>, String> {
    defs.iter()
        .map(|def| RunThreshold::resolve(def.clone(), endpoints))
        .collect()
}

/// The value of `metric` over `counts` and `histogram` (latencies in
/// microseconds) in the metric's unit, `None` when there is nothing to
/// measure: no completed request (or, for `rps`, no time elapsed).
pub(crate) fn observe(
    metric: Metric,
    counts: &Counts,
    histogram: &LatencyHistogram,
    duration_s: f64,
    unrecorded: u64,
) -> Option<f64> {
    let ms = |us: u64| us as f64 / 1000.0;
    let timed = !histogram.is_empty();
    match metric {
        Metric::Percentile(q) if timed => Some(ms(histogram.value_at_quantile_us(q / 100.0))),
        Metric::Max if timed => Some(ms(histogram.max_us())),
        Metric::Min if timed => Some(ms(histogram.min_us())),
        Metric::Mean if timed => Some(histogram.mean_us() / 1000.0),
        Metric::Percentile(_) | Metric::Max | Metric::Min | Metric::Mean => None,
        Metric::FailureRate => {
            (counts.requests > 0).then(|| counts.failures as f64 / counts.requests as f64)
        }
        Metric::Rps => (duration_s > 0.0).then(|| counts.requests as f64 / duration_s),
        Metric::Requests => Some(counts.requests as f64),
        Metric::Failures => Some(counts.failures as f64),
        Metric::Unrecorded => Some(unrecorded as f64),
    }
}

/// Checks every threshold against per-endpoint `totals` (indexed by
/// endpoint) and the run's `total` (its requests, without groups) over a
/// run that has lasted `duration_s`. A threshold with nothing to measure
/// fails.
pub(crate) fn evaluate(
    thresholds: &[RunThreshold],
    totals: &[(Counts, LatencyHistogram)],
    total: (&Counts, &LatencyHistogram),
    duration_s: f64,
    unrecorded: u64,
) -> Vec<v1::ThresholdResult> {
    if thresholds.is_empty() {
        return Vec::new();
    }
    let (all_counts, all_histogram) = total;
    let empty = (Counts::default(), LatencyHistogram::new());
    thresholds
        .iter()
        .map(|threshold| {
            let (counts, histogram) = match threshold.endpoint {
                None => (all_counts, all_histogram),
                Some(index) => {
                    let (counts, histogram) = totals.get(index).unwrap_or(&empty);
                    (counts, histogram)
                }
            };
            let observed = observe(
                threshold.expr.metric,
                counts,
                histogram,
                duration_s,
                unrecorded,
            );
            v1::ThresholdResult {
                expression: threshold.def.expression.clone(),
                endpoint: threshold.def.endpoint.clone().unwrap_or_default(),
                observed,
                observed_text: observed.map_or_else(
                    || "no requests".to_owned(),
                    |value| threshold.expr.metric.format_observed(value),
                ),
                passed: observed.is_some_and(|value| threshold.expr.passes(value)),
                abort_on_fail: threshold.def.abort_on_fail,
                delay_ms: threshold.def.delay_ms,
            }
        })
        .collect()
}

/// The results as the store records them (index = position).
pub(crate) fn outcomes(results: &[v1::ThresholdResult]) -> Vec<ThresholdOutcome> {
    results
        .iter()
        .enumerate()
        .map(|(index, result)| ThresholdOutcome {
            index: index as u32,
            observed: result.observed,
            passed: result.passed,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `evaluate` with the total of every endpoint.
    fn evaluate_all(
        thresholds: &[RunThreshold],
        totals: &[(Counts, LatencyHistogram)],
        duration_s: f64,
        unrecorded: u64,
    ) -> Vec<v1::ThresholdResult> {
        let mut counts = Counts::default();
        let mut histogram = LatencyHistogram::new();
        for (c, h) in totals {
            counts.add(c);
            histogram.merge(h).unwrap();
        }
        evaluate(
            thresholds,
            totals,
            (&counts, &histogram),
            duration_s,
            unrecorded,
        )
    }

    fn endpoints() -> Vec<Endpoint> {
        vec![
            Endpoint {
                index: 0,
                method: "GET".into(),
                name: "/fast".into(),
            },
            Endpoint {
                index: 1,
                method: "POST".into(),
                name: "/slow".into(),
            },
        ]
    }

    fn threshold(expression: &str, endpoint: Option<&str>) -> RunThreshold {
        let def = ThresholdDef {
            expression: expression.into(),
            endpoint: endpoint.map(str::to_owned),
            abort_on_fail: false,
            delay_ms: 0,
        };
        RunThreshold::resolve(def, &endpoints()).unwrap()
    }

    /// 90 requests at 1 ms on /fast (none failed), 10 at 100 ms on /slow (5 failed).
    fn totals() -> Vec<(Counts, LatencyHistogram)> {
        let mut fast = LatencyHistogram::new();
        fast.record_n_us(1_000, 90);
        let mut slow = LatencyHistogram::new();
        slow.record_n_us(100_000, 10);
        let counts = |requests, failures| Counts {
            requests,
            failures,
            cancelled: 0,
            bytes: 0,
        };
        vec![(counts(90, 0), fast), (counts(10, 5), slow)]
    }

    fn check(expression: &str, endpoint: Option<&str>) -> v1::ThresholdResult {
        evaluate_all(&[threshold(expression, endpoint)], &totals(), 10.0, 0).remove(0)
    }

    #[test]
    fn total_percentiles_come_from_the_merged_histogram() {
        // p50 of all requests is the fast endpoint's latency and p95 the slow
        // one's: averaging per-endpoint percentiles would give neither.
        let p50 = check("p50 < 2ms", None);
        assert_eq!((p50.observed, p50.passed), (Some(1.0), true));
        assert_eq!(p50.observed_text, "1 ms");
        let p95 = check("p95 < 50ms", None);
        assert!(!p95.passed);
        assert!((p95.observed.unwrap() - 100.0).abs() < 0.1, "{p95:?}");
        assert_eq!(p95.endpoint, "");
        let p90 = check("p90 <= 1ms", None);
        assert!(p90.passed, "{p90:?}");
    }

    #[test]
    fn every_metric_per_endpoint_and_total() {
        let cases: &[(&str, Option<&str>, f64, bool)] = &[
            ("max < 1s", None, 100.0, true),
            ("min >= 1ms", None, 1.0, true),
            ("mean < 10ms", None, 10.9, false),
            ("failure_rate < 1%", None, 0.05, false),
            ("failure_rate <= 0.5", Some("POST /slow"), 0.5, true),
            ("failure_rate < 1%", Some("GET /fast"), 0.0, true),
            ("rps >= 10", None, 10.0, true),
            ("rps > 1", Some("POST /slow"), 1.0, false),
            ("requests >= 100", None, 100.0, true),
            ("failures <= 4", Some("POST /slow"), 5.0, false),
            ("p99.9 < 2ms", Some("GET /fast"), 1.0, true),
        ];
        for (expression, endpoint, observed, passed) in cases {
            let result = check(expression, *endpoint);
            let got = result.observed.unwrap();
            assert!(
                (got - observed).abs() < 0.01 * observed.max(1.0),
                "{expression}: observed {got}, want {observed}"
            );
            assert_eq!(result.passed, *passed, "{expression}: {result:?}");
            assert_eq!(result.endpoint, endpoint.unwrap_or(""));
        }
    }

    #[test]
    fn nothing_measured_fails_without_a_value() {
        let empty = vec![(Counts::default(), LatencyHistogram::new()); 2];
        for expression in ["p95 < 1s", "max < 1s", "failure_rate < 1%"] {
            let results = evaluate_all(&[threshold(expression, None)], &empty, 5.0, 0);
            assert_eq!(results[0].observed, None, "{expression}");
            assert!(!results[0].passed, "{expression}");
            assert_eq!(results[0].observed_text, "no requests");
        }
        let rps = evaluate_all(&[threshold("rps >= 0", None)], &empty, 0.0, 0);
        assert_eq!(rps[0].observed, None);
        let requests = evaluate_all(&[threshold("requests < 1", None)], &empty, 0.0, 0);
        assert!(requests[0].passed);
    }

    #[test]
    fn resolve_rejects_bad_expressions_and_unknown_endpoints() {
        let def = |expression: &str, endpoint: Option<&str>| ThresholdDef {
            expression: expression.into(),
            endpoint: endpoint.map(str::to_owned),
            abort_on_fail: true,
            delay_ms: 1000,
        };
        assert!(RunThreshold::resolve(def("p95 < 1", None), &endpoints()).is_err());
        let error =
            RunThreshold::resolve(def("p95 < 1s", Some("GET /slow")), &endpoints()).unwrap_err();
        assert!(error.contains("GET /slow"), "{error}");
        let ok = RunThreshold::resolve(def("p95 < 1s", Some("POST  /slow")), &endpoints()).unwrap();
        assert_eq!(ok.endpoint, Some(1));
        let results = evaluate_all(&[ok], &totals(), 1.0, 0);
        assert!(results[0].abort_on_fail);
        assert_eq!(results[0].delay_ms, 1000);
        assert_eq!(outcomes(&results)[0].index, 0);
    }
}
