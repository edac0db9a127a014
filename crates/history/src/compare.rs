//! Deltas and regression flags between two sets of metrics.

use crate::model::{EndpointComparison, Metric, MetricComparison, Metrics, Tolerance};

/// Compares every metric of `a` (the baseline) with `b`. A checked metric
/// (latency percentiles but max, and the failure rate) regresses when
/// `b > a * (1 + tolerance)`; from a = 0 any rise regresses.
pub fn compare_metrics(
    endpoint: &str,
    a: &Metrics,
    b: &Metrics,
    tolerance: Tolerance,
) -> EndpointComparison {
    let metrics: Vec<MetricComparison> = Metric::ALL
        .into_iter()
        .map(|metric| {
            let (va, vb) = (metric.of(a), metric.of(b));
            let delta = vb - va;
            let relative = (va != 0.0).then(|| delta / va);
            let regression = metric.is_checked() && vb > va * (1.0 + tolerance.0);
            MetricComparison {
                metric,
                a: va,
                b: vb,
                delta,
                relative,
                regression,
            }
        })
        .collect();
    EndpointComparison {
        endpoint: endpoint.to_owned(),
        regression: metrics.iter().any(|m| m.regression),
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(p95_ms: f64, failure_rate: f64, rps: f64) -> Metrics {
        Metrics {
            requests: 1000,
            failures: (failure_rate * 1000.0) as u64,
            rps,
            failure_rate,
            p50_ms: 10.0,
            p90_ms: 20.0,
            p95_ms,
            p99_ms: 40.0,
            p999_ms: 50.0,
            max_ms: 60.0,
        }
    }

    fn get(c: &EndpointComparison, metric: Metric) -> &MetricComparison {
        c.metrics.iter().find(|m| m.metric == metric).unwrap()
    }

    #[test]
    fn deltas_are_absolute_and_relative() {
        let c = compare_metrics(
            "GET /",
            &metrics(100.0, 0.0, 50.0),
            &metrics(104.0, 0.0, 40.0),
            Tolerance(0.05),
        );
        let p95 = get(&c, Metric::P95);
        assert_eq!((p95.a, p95.b, p95.delta), (100.0, 104.0, 4.0));
        assert!((p95.relative.unwrap() - 0.04).abs() < 1e-12);
        assert!(!p95.regression, "4% is within 5%");
        // RPS fell by 20%: reported, never flagged.
        let rps = get(&c, Metric::Rps);
        assert_eq!(rps.delta, -10.0);
        assert!(!rps.regression);
        assert!(!c.regression);
        // From 0 there is no relative change.
        assert_eq!(get(&c, Metric::FailureRate).relative, None);
    }

    #[test]
    fn worse_beyond_tolerance_is_a_regression() {
        let a = metrics(100.0, 0.01, 50.0);
        let c = compare_metrics("total", &a, &metrics(106.0, 0.01, 50.0), Tolerance(0.05));
        assert!(get(&c, Metric::P95).regression);
        assert!(c.regression);
        // A looser tolerance lets it pass; better is never a regression.
        assert!(
            !compare_metrics("total", &a, &metrics(106.0, 0.01, 50.0), Tolerance(0.10)).regression
        );
        assert!(
            !compare_metrics("total", &a, &metrics(50.0, 0.0, 10.0), Tolerance(0.0)).regression
        );
        // Failure rate: from 0 any failure regresses.
        let c = compare_metrics(
            "total",
            &metrics(100.0, 0.0, 50.0),
            &metrics(100.0, 0.001, 50.0),
            Tolerance(0.05),
        );
        assert!(get(&c, Metric::FailureRate).regression);
        // The maximum is a single sample: not flagged.
        let mut b = a.clone();
        b.max_ms = 10_000.0;
        assert!(!compare_metrics("total", &a, &b, Tolerance(0.05)).regression);
    }

    #[test]
    fn tolerances_parse() {
        assert_eq!("5%".parse::<Tolerance>().unwrap(), Tolerance(0.05));
        assert_eq!("0.1".parse::<Tolerance>().unwrap(), Tolerance(0.1));
        assert_eq!("0%".parse::<Tolerance>().unwrap(), Tolerance(0.0));
        assert!("-1%".parse::<Tolerance>().is_err());
        assert!(
            "lots"
                .parse::<Tolerance>()
                .unwrap_err()
                .to_string()
                .contains("such as 5%")
        );
        assert_eq!("P999".parse::<Metric>().unwrap(), Metric::P999);
        assert!(
            "p42"
                .parse::<Metric>()
                .unwrap_err()
                .to_string()
                .contains("allowed: requests")
        );
    }
}
