use std::collections::BTreeMap;

use cicada_proto::v1 as pb;
use cicada_store::{RunFilter, RunStatus, StoreError};
use proptest::prelude::*;

use super::*;
use crate::{
    Comparison, EndpointComparison, EndpointMetrics, Metric, MetricComparison, Metrics, RunDetail,
    RunInfo, SecondPoint, ThresholdInfo, Tolerance, Trend, TrendPoint, Window,
};

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        -1e12..1e12f64,
        Just(f64::INFINITY),
        Just(f64::MAX)
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 /=._é-]{0,12}"
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..3)
}

fn window() -> impl Strategy<Value = Window> {
    (any::<u64>(), any::<Option<u64>>()).prop_map(|(from_s, to_s)| Window { from_s, to_s })
}

fn metric() -> impl Strategy<Value = Metric> {
    prop::sample::select(Metric::ALL.to_vec())
}

prop_compose! {
    fn run_info()(
        id in text(), scenario_name in text(), host in text(),
        status in prop::sample::select(vec!["running", "finished", "failed"]),
        started_at_ms in any::<i64>(), ended_at_ms in any::<Option<i64>>(),
        labels in labels(), error in prop::option::of(text()),
    ) -> RunInfo {
        RunInfo { id, scenario_name, host, status: status.to_owned(), started_at_ms, ended_at_ms, labels, error }
    }
}

prop_compose! {
    fn metrics()(
        requests in any::<u64>(), failures in any::<u64>(),
        f in prop::array::uniform8(number()),
    ) -> Metrics {
        Metrics {
            requests, failures, rps: f[0], failure_rate: f[1], p50_ms: f[2], p90_ms: f[3],
            p95_ms: f[4], p99_ms: f[5], p999_ms: f[6], max_ms: f[7],
        }
    }
}

prop_compose! {
    fn second()(
        t_s in any::<i64>(), requests in any::<u64>(), failures in any::<u64>(),
        p in prop::array::uniform3(number()), users in any::<u64>(),
    ) -> SecondPoint {
        SecondPoint { t_s, requests, failures, p50_ms: p[0], p95_ms: p[1], p99_ms: p[2], users }
    }
}

prop_compose! {
    fn run_detail()(
        run in run_info(), config_json in text(), scenario_yaml in text(),
        thresholds in prop::collection::vec(
            (text(), prop::option::of(text()), prop::option::of(number()), any::<Option<bool>>())
                .prop_map(|(expression, endpoint, observed, passed)| ThresholdInfo { expression, endpoint, observed, passed }),
            0..3),
        window in window(), duration_s in number(),
        endpoints in prop::collection::vec(
            (text(), metrics()).prop_map(|(endpoint, metrics)| EndpointMetrics { endpoint, metrics }), 0..4),
        total in metrics(),
        series in prop::collection::vec(second(), 0..5),
    ) -> RunDetail {
        RunDetail { run, config_json, scenario_yaml, thresholds, window, duration_s, endpoints, total, series }
    }
}

fn endpoint_comparison() -> impl Strategy<Value = EndpointComparison> {
    let metric_comparison = (
        metric(),
        number(),
        number(),
        number(),
        prop::option::of(number()),
        any::<bool>(),
    )
        .prop_map(
            |(metric, a, b, delta, relative, regression)| MetricComparison {
                metric,
                a,
                b,
                delta,
                relative,
                regression,
            },
        );
    (
        text(),
        prop::collection::vec(metric_comparison, 0..9),
        any::<bool>(),
    )
        .prop_map(|(endpoint, metrics, regression)| EndpointComparison {
            endpoint,
            metrics,
            regression,
        })
}

prop_compose! {
    fn comparison()(
        a in run_info(), b in run_info(), window in window(), tolerance in number(),
        endpoints in prop::collection::vec(endpoint_comparison(), 0..3),
        total in endpoint_comparison(),
        only_in_a in prop::collection::vec(text(), 0..2),
        only_in_b in prop::collection::vec(text(), 0..2),
        regression in any::<bool>(),
    ) -> Comparison {
        Comparison { a, b, window, tolerance: Tolerance(tolerance), endpoints, total, only_in_a, only_in_b, regression }
    }
}

prop_compose! {
    fn trend()(
        scenario in text(), metric in metric(), endpoint in text(),
        points in prop::collection::vec(
            (text(), any::<i64>(), labels(), prop::option::of(number()))
                .prop_map(|(run_id, started_at_ms, labels, value)| TrendPoint { run_id, started_at_ms, labels, value }),
            0..4),
    ) -> Trend {
        Trend { scenario, metric, endpoint, points }
    }
}

/// Through the wire: encoded and decoded with prost, like a real call.
fn wire<M: prost::Message + Default>(message: M) -> M {
    M::decode(message.encode_to_vec().as_slice()).unwrap()
}

proptest! {
    #[test]
    fn run_details_round_trip(detail in run_detail()) {
        let back = RunDetail::try_from(wire(pb::HistoryRunDetail::from(detail.clone()))).unwrap();
        prop_assert_eq!(back, detail);
    }

    #[test]
    fn comparisons_round_trip(comparison in comparison()) {
        let back = Comparison::try_from(wire(pb::HistoryComparison::from(comparison.clone()))).unwrap();
        prop_assert_eq!(back, comparison);
    }

    #[test]
    fn trends_round_trip(trend in trend()) {
        let back = Trend::try_from(wire(pb::HistoryTrend::from(trend.clone()))).unwrap();
        prop_assert_eq!(back, trend);
    }

    #[test]
    fn runs_round_trip(run in run_info()) {
        prop_assert_eq!(RunInfo::from(wire(pb::HistoryRun::from(run.clone()))), run);
    }

    #[test]
    fn filters_round_trip(
        limit in 1..=MAX_LIMIT,
        scenario_name in prop::option::of("[a-z]{1,8}"),
        status in prop::option::of(prop::sample::select(vec![RunStatus::Running, RunStatus::Finished, RunStatus::Failed])),
        label in prop::option::of(("[a-z]{1,5}", "[a-z0-9]{0,5}")),
        started_after_ms in any::<Option<i64>>(),
        started_before_ms in any::<Option<i64>>(),
    ) {
        let filter = RunFilter { limit, scenario_name, status, label, started_after_ms, started_before_ms };
        let request = wire(search_request(&filter));
        prop_assert_eq!(filter_of(&request).unwrap(), filter);
    }
}

fn invalid<T: std::fmt::Debug>(result: Result<T, HistoryError>) -> String {
    match result {
        Err(HistoryError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn requests_are_checked() {
    let empty = pb::HistoryWindow {
        from_s: 60,
        to_s: Some(60),
    };
    assert!(invalid(window_of(Some(empty))).contains("--to must be after --from"));
    assert_eq!(window_of(None).unwrap(), Window::default());
    assert!(invalid(tolerance_of(Some(-0.1))).contains("fraction >= 0"));
    assert!(invalid(tolerance_of(Some(f64::NAN))).contains("fraction >= 0"));
    assert_eq!(tolerance_of(None).unwrap(), Tolerance::default());
    assert!(invalid(metric_of("p42")).contains("allowed: requests"));
    assert!(invalid(run_id_of("", "run_a")).contains("run_a is empty"));
    assert!(invalid(last_of(MAX_LIMIT + 1)).contains("maximum"));
    assert_eq!(last_of(0).unwrap(), DEFAULT_TREND_LAST);
    assert_eq!(endpoint_of("total"), None);
    assert_eq!(endpoint_of("GET /"), Some("GET /"));
    let search = |f: fn(&mut pb::SearchRunsRequest)| {
        let mut request = pb::SearchRunsRequest::default();
        f(&mut request);
        filter_of(&request)
    };
    assert_eq!(search(|_| ()).unwrap().limit, DEFAULT_SEARCH_LIMIT);
    assert!(invalid(search(|r| r.status = "done".into())).contains("allowed: running"));
    assert!(invalid(search(|r| r.label_value = "x".into())).contains("without a label_key"));
    assert!(invalid(search(|r| r.limit = 5000)).contains("maximum 1000"));
}

#[test]
fn errors_survive_the_wire() {
    let cases = [
        HistoryError::NotFound("r1".into()),
        HistoryError::NoBaseline {
            scenario: "checkout é".into(),
            run_id: "r2".into(),
        },
        HistoryError::Invalid("unknown metric \"p42\"".into()),
        HistoryError::Remote {
            code: Code::Unavailable,
            message: "gone".into(),
        },
    ];
    for original in cases {
        let (code, text) = (status(&original).code(), original.to_string());
        let back = error(status(&original));
        assert_eq!(back.to_string(), text);
        assert_eq!(status(&back).code(), code);
        assert_eq!(
            std::mem::discriminant(&back),
            std::mem::discriminant(&original)
        );
    }
    // The store's errors: not found and invalid as the query errors are.
    let back = error(status(&HistoryError::Store(StoreError::NotFound(
        "r3".into(),
    ))));
    assert!(matches!(back, HistoryError::NotFound(id) if id == "r3"));
    let s = status(&HistoryError::Store(StoreError::Invalid("key".into())));
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(matches!(error(s), HistoryError::Invalid(m) if m == "invalid input: key"));
    let s = status(&HistoryError::Store(StoreError::Corrupt("bad row".into())));
    assert_eq!(s.code(), Code::Internal);
    // A status without History details (an interceptor's, say) stays remote.
    let back = error(tonic::Status::unauthenticated("missing token"));
    assert!(matches!(
        back,
        HistoryError::Remote {
            code: Code::Unauthenticated,
            ..
        }
    ));
}
