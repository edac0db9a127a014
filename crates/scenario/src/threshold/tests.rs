use std::time::Duration;

use super::*;

fn expr(text: &str) -> Expr {
    Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn expr_error(text: &str) -> String {
    Expr::parse(text).unwrap_err().0
}

fn endpoints() -> Vec<EndpointDef> {
    [
        ("POST", "/login"),
        ("POST", "/metrics"),
        ("GET", "/items/:id"),
    ]
    .into_iter()
    .map(|(method, name)| EndpointDef {
        method: method.into(),
        name: name.into(),
    })
    .collect()
}

#[test]
fn every_metric_parses_into_its_unit() {
    let cases: &[(&str, Metric, Op, f64, &str)] = &[
        (
            "p95 < 150ms",
            Metric::Percentile(95.0),
            Op::Lt,
            150.0,
            "p95 < 150ms",
        ),
        (
            "p50<=2s",
            Metric::Percentile(50.0),
            Op::Le,
            2000.0,
            "p50 <= 2s",
        ),
        (
            "p99.9 < 1s",
            Metric::Percentile(99.9),
            Op::Lt,
            1000.0,
            "p99.9 < 1s",
        ),
        (
            "p0.1 > 250us",
            Metric::Percentile(0.1),
            Op::Gt,
            0.25,
            "p0.1 > 250us",
        ),
        ("max < 1.5s", Metric::Max, Op::Lt, 1500.0, "max < 1.5s"),
        ("min >= 1ms", Metric::Min, Op::Ge, 1.0, "min >= 1ms"),
        ("mean < 20 ms", Metric::Mean, Op::Lt, 20.0, "mean < 20ms"),
        (
            "failure_rate < 1%",
            Metric::FailureRate,
            Op::Lt,
            0.01,
            "failure_rate < 1%",
        ),
        (
            "failure_rate<=0.05",
            Metric::FailureRate,
            Op::Le,
            0.05,
            "failure_rate <= 0.05",
        ),
        (
            "rps >= 100000",
            Metric::Rps,
            Op::Ge,
            100_000.0,
            "rps >= 100000",
        ),
        ("rps > 10.5", Metric::Rps, Op::Gt, 10.5, "rps > 10.5"),
        (
            "requests >= 1000",
            Metric::Requests,
            Op::Ge,
            1000.0,
            "requests >= 1000",
        ),
        (
            "failures <= 0",
            Metric::Failures,
            Op::Le,
            0.0,
            "failures <= 0",
        ),
    ];
    for (text, metric, op, limit, canonical) in cases {
        let e = expr(text);
        assert_eq!(e.metric, *metric, "{text}");
        assert_eq!(e.op, *op, "{text}");
        assert!((e.limit - limit).abs() < 1e-9, "{text}: {}", e.limit);
        assert_eq!(e.to_string(), *canonical);
        // The canonical text reads back to the same expression.
        assert_eq!(expr(canonical), e);
    }
}

#[test]
fn operators_compare_as_written() {
    assert!(expr("p95 < 150ms").passes(149.9));
    assert!(!expr("p95 < 150ms").passes(150.0));
    assert!(expr("p95 <= 150ms").passes(150.0));
    assert!(!expr("rps > 10").passes(10.0));
    assert!(expr("rps >= 10").passes(10.0));
    assert!(!expr("rps >= 10").passes(9.99));
}

#[test]
fn expression_errors_say_what_is_allowed() {
    let cases: &[(&str, &str)] = &[
        (
            "p95 150ms",
            "has no operator; expected METRIC OP VALUE, e.g. p95 < 150ms (operators: <, <=, >, >=)",
        ),
        (
            "p95 == 150ms",
            "unknown operator \"==\" in threshold \"p95 == 150ms\"; allowed: <, <=, >, >=",
        ),
        ("p95 != 1ms", "unknown operator \"!=\""),
        (
            "p95 < 150",
            "latency \"150\" needs a unit; allowed: us, ms or s (e.g. 150ms)",
        ),
        (
            "max < 2m",
            "unknown unit \"m\" in \"2m\"; allowed: us, ms or s",
        ),
        (
            "p95 < fast",
            "invalid value \"fast\"; expected a duration with a unit (us, ms or s), e.g. 150ms",
        ),
        (
            "p100 < 1s",
            "percentile \"p100\" is out of range; allowed: more than p0 and less than p100 (use min or max)",
        ),
        ("p0 < 1s", "out of range"),
        (
            "latency < 1s",
            "unknown metric \"latency\"; allowed: pNN (e.g. p50, p95, p99.9), max, min, mean, failure_rate, rps, requests, failures, unrecorded",
        ),
        ("p < 1s", "unknown metric \"p\""),
        ("< 1s", "has no metric"),
        ("p95 <", "has no value after <"),
        (
            "failure_rate < 150%",
            "failure rate \"150%\" is more than 100%",
        ),
        (
            "failure_rate < 1ms",
            "expected a percentage (1%) or a fraction from 0 to 1 (0.01)",
        ),
        ("rps >= 10/s", "invalid value \"10/s\" for rps"),
        (
            "requests > 1.5",
            "invalid value \"1.5\" for requests; expected a whole number",
        ),
        ("failures < -1", "invalid value \"-1\" for failures"),
    ];
    for (text, want) in cases {
        let got = expr_error(text);
        assert!(got.contains(want), "{text}: {got}");
    }
}

#[test]
fn observed_values_are_formatted_by_metric() {
    assert_eq!(Metric::Percentile(95.0).format_observed(180.2), "180.2 ms");
    assert_eq!(Metric::Max.format_observed(20.0), "20 ms");
    assert_eq!(Metric::Mean.format_observed(0.256), "0.26 ms");
    assert_eq!(Metric::FailureRate.format_observed(0.0125), "1.25%");
    assert_eq!(Metric::Rps.format_observed(950.34), "950.3/s");
    assert_eq!(Metric::Requests.format_observed(1200.0), "1200");
    assert!(Metric::Min.is_latency() && !Metric::Rps.is_latency());
}

#[test]
fn flags_with_endpoint_and_abort() {
    let t = Threshold::parse_flag("p95<150ms").unwrap();
    assert_eq!((t.endpoint.as_deref(), t.abort_on_fail), (None, false));
    assert_eq!(t.scope(), "total");

    let t = Threshold::from_flag("POST /metrics: p99<500ms", &endpoints()).unwrap();
    assert_eq!(t.endpoint.as_deref(), Some("POST /metrics"));
    assert_eq!(t.to_string(), "POST /metrics: p99 < 500ms");

    // Split at the last ": ": the name itself may contain ':'.
    let t = Threshold::from_flag("GET /items/:id: max < 1s abort_on_fail", &endpoints()).unwrap();
    assert_eq!(t.endpoint.as_deref(), Some("GET /items/:id"));
    assert!(t.abort_on_fail);
    assert_eq!(t.delay, Duration::ZERO);

    let t = Threshold::parse_flag("failure_rate < 1% abort_on_fail=30s").unwrap();
    assert!(t.abort_on_fail);
    assert_eq!(t.delay, Duration::from_secs(30));
    assert_eq!(t.to_string(), "failure_rate < 1% abort_on_fail=30s");
    assert_eq!(Threshold::parse_flag(&t.to_string()).unwrap(), t);
}

#[test]
fn flag_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "p95 < 150ms abort_on_fail=soon",
            "invalid delay \"soon\"; expected a duration like 500ms, 30s or 2m",
        ),
        (
            "p95 < 150ms abort_on_failx",
            "invalid suffix \"abort_on_failx\"; expected abort_on_fail or abort_on_fail=DELAY",
        ),
        (": p95 < 1s", "empty endpoint"),
        (
            "POST /nope: p95 < 1s",
            "unknown endpoint \"POST /nope\" in threshold; expected METHOD NAME, one of: POST /login, POST /metrics, GET /items/:id",
        ),
        ("p95 < 1", "needs a unit"),
    ];
    for (text, want) in cases {
        let got = Threshold::from_flag(text, &endpoints()).unwrap_err().0;
        assert!(got.contains(want), "{text}: {got}");
    }
}

#[test]
fn endpoint_lookup_tolerates_extra_spaces() {
    assert_eq!(endpoint_index(&endpoints(), "POST /metrics"), Some(1));
    assert_eq!(endpoint_index(&endpoints(), "POST   /metrics"), Some(1));
    assert_eq!(endpoint_index(&endpoints(), "GET /metrics"), None);
    assert_eq!(endpoint_index(&endpoints(), "/metrics"), None);
}
