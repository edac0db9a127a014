//! The history types to and from their `cicada.v1` messages. Answers from a
//! server convert back with `TryFrom`: a message missing a part every
//! answer has is malformed ([`HistoryError::Remote`]).

use cicada_proto::v1 as pb;
use cicada_store::{RunFilter, RunStatus};

use crate::{
    Comparison, EndpointComparison, EndpointMetrics, HistoryError, Metric, MetricComparison,
    Metrics, RunDetail, RunInfo, SecondPoint, ThresholdInfo, Tolerance, Trend, TrendPoint, Window,
};

/// Most runs one search returns, and most runs one trend reads.
pub const MAX_LIMIT: u32 = 1000;
/// Runs a search returns when the request says 0.
pub const DEFAULT_SEARCH_LIMIT: u32 = 50;
/// Runs a trend reads when the request says 0.
pub const DEFAULT_TREND_LAST: u32 = 30;

pub(super) fn malformed(what: &str) -> HistoryError {
    HistoryError::Remote {
        code: tonic::Code::Internal,
        message: format!("malformed answer from the history service: {what}"),
    }
}

fn required<T>(field: Option<T>, what: &str) -> Result<T, HistoryError> {
    field.ok_or_else(|| malformed(&format!("{what} is missing")))
}

impl From<Window> for pb::HistoryWindow {
    fn from(w: Window) -> Self {
        Self {
            from_s: w.from_s,
            to_s: w.to_s,
        }
    }
}

/// A request's window: absent is the whole run; an empty one is
/// [`HistoryError::Invalid`].
pub fn window_of(window: Option<pb::HistoryWindow>) -> Result<Window, HistoryError> {
    match window {
        None => Ok(Window::default()),
        Some(w) => Window::new(Some(w.from_s), w.to_s),
    }
}

/// A request's tolerance: absent is the default 5%.
pub fn tolerance_of(tolerance: Option<f64>) -> Result<Tolerance, HistoryError> {
    match tolerance {
        None => Ok(Tolerance::default()),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Tolerance(t)),
        Some(t) => Err(HistoryError::Invalid(format!(
            "tolerance {t} is not a fraction >= 0 such as 0.05 (5%)"
        ))),
    }
}

/// A request's run id, which must not be empty.
pub fn run_id_of<'a>(run_id: &'a str, field: &str) -> Result<&'a str, HistoryError> {
    if run_id.is_empty() {
        return Err(HistoryError::Invalid(format!(
            "{field} is empty; give the id of a stored run"
        )));
    }
    Ok(run_id)
}

/// The request that searches with `f`.
pub fn search_request(f: &RunFilter) -> pb::SearchRunsRequest {
    let (label_key, label_value) = f.label.clone().unwrap_or_default();
    pb::SearchRunsRequest {
        scenario_name: f.scenario_name.clone().unwrap_or_default(),
        status: f.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        label_key,
        label_value,
        started_after_ms: f.started_after_ms,
        started_before_ms: f.started_before_ms,
        limit: f.limit,
    }
}

/// A search request's filter: 0 runs is the default 50, at most [`MAX_LIMIT`].
pub fn filter_of(r: &pb::SearchRunsRequest) -> Result<RunFilter, HistoryError> {
    let status = match r.status.as_str() {
        "" => None,
        text => Some(text.parse::<RunStatus>().map_err(|_| {
            HistoryError::Invalid(format!(
                "status {text:?} is unknown; allowed: running, finished, failed (or empty for any)"
            ))
        })?),
    };
    let label = match (r.label_key.as_str(), r.label_value.as_str()) {
        ("", "") => None,
        ("", value) => {
            return Err(HistoryError::Invalid(format!(
                "label_value {value:?} without a label_key; give both"
            )));
        }
        (key, value) => Some((key.to_owned(), value.to_owned())),
    };
    let limit = match r.limit {
        0 => DEFAULT_SEARCH_LIMIT,
        limit if limit > MAX_LIMIT => {
            return Err(HistoryError::Invalid(format!(
                "limit {limit} is above the maximum {MAX_LIMIT}; page with started_before_ms"
            )));
        }
        limit => limit,
    };
    Ok(RunFilter {
        limit,
        scenario_name: (!r.scenario_name.is_empty()).then(|| r.scenario_name.clone()),
        status,
        label,
        started_after_ms: r.started_after_ms,
        started_before_ms: r.started_before_ms,
    })
}

impl From<RunInfo> for pb::HistoryRun {
    fn from(r: RunInfo) -> Self {
        Self {
            id: r.id,
            scenario_name: r.scenario_name,
            host: r.host,
            status: r.status,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            labels: r.labels.into_iter().collect(),
            error: r.error,
        }
    }
}

impl From<pb::HistoryRun> for RunInfo {
    fn from(r: pb::HistoryRun) -> Self {
        Self {
            id: r.id,
            scenario_name: r.scenario_name,
            host: r.host,
            status: r.status,
            started_at_ms: r.started_at_ms,
            ended_at_ms: r.ended_at_ms,
            labels: r.labels.into_iter().collect(),
            error: r.error,
        }
    }
}

impl From<Metrics> for pb::HistoryMetrics {
    fn from(m: Metrics) -> Self {
        Self {
            requests: m.requests,
            failures: m.failures,
            rps: m.rps,
            failure_rate: m.failure_rate,
            p50_ms: m.p50_ms,
            p90_ms: m.p90_ms,
            p95_ms: m.p95_ms,
            p99_ms: m.p99_ms,
            p999_ms: m.p999_ms,
            max_ms: m.max_ms,
        }
    }
}

impl From<pb::HistoryMetrics> for Metrics {
    fn from(m: pb::HistoryMetrics) -> Self {
        Self {
            requests: m.requests,
            failures: m.failures,
            rps: m.rps,
            failure_rate: m.failure_rate,
            p50_ms: m.p50_ms,
            p90_ms: m.p90_ms,
            p95_ms: m.p95_ms,
            p99_ms: m.p99_ms,
            p999_ms: m.p999_ms,
            max_ms: m.max_ms,
        }
    }
}

impl From<SecondPoint> for pb::HistorySecond {
    fn from(s: SecondPoint) -> Self {
        Self {
            t_s: s.t_s,
            requests: s.requests,
            failures: s.failures,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            users: s.users,
        }
    }
}

impl From<pb::HistorySecond> for SecondPoint {
    fn from(s: pb::HistorySecond) -> Self {
        Self {
            t_s: s.t_s,
            requests: s.requests,
            failures: s.failures,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            users: s.users,
        }
    }
}

impl From<ThresholdInfo> for pb::HistoryThreshold {
    fn from(t: ThresholdInfo) -> Self {
        Self {
            expression: t.expression,
            endpoint: t.endpoint,
            observed: t.observed,
            passed: t.passed,
        }
    }
}

impl From<pb::HistoryThreshold> for ThresholdInfo {
    fn from(t: pb::HistoryThreshold) -> Self {
        Self {
            expression: t.expression,
            endpoint: t.endpoint,
            observed: t.observed,
            passed: t.passed,
        }
    }
}

impl From<RunDetail> for pb::HistoryRunDetail {
    fn from(d: RunDetail) -> Self {
        Self {
            run: Some(d.run.into()),
            config_json: d.config_json,
            scenario_yaml: d.scenario_yaml,
            thresholds: d.thresholds.into_iter().map(Into::into).collect(),
            window: Some(d.window.into()),
            duration_s: d.duration_s,
            endpoints: d
                .endpoints
                .into_iter()
                .map(|e| pb::HistoryEndpointMetrics {
                    endpoint: e.endpoint,
                    metrics: Some(e.metrics.into()),
                })
                .collect(),
            total: Some(d.total.into()),
            series: d.series.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<pb::HistoryRunDetail> for RunDetail {
    type Error = HistoryError;

    fn try_from(d: pb::HistoryRunDetail) -> Result<Self, HistoryError> {
        let endpoints = d
            .endpoints
            .into_iter()
            .map(|e| {
                Ok(EndpointMetrics {
                    metrics: required(e.metrics, "an endpoint's metrics")?.into(),
                    endpoint: e.endpoint,
                })
            })
            .collect::<Result<_, HistoryError>>()?;
        Ok(Self {
            run: required(d.run, "the run")?.into(),
            config_json: d.config_json,
            scenario_yaml: d.scenario_yaml,
            thresholds: d.thresholds.into_iter().map(Into::into).collect(),
            window: answered_window(d.window)?,
            duration_s: d.duration_s,
            endpoints,
            total: required(d.total, "the total")?.into(),
            series: d.series.into_iter().map(Into::into).collect(),
        })
    }
}

fn answered_window(window: Option<pb::HistoryWindow>) -> Result<Window, HistoryError> {
    let w = required(window, "the window")?;
    Ok(Window {
        from_s: w.from_s,
        to_s: w.to_s,
    })
}

/// A metric named in a request (`p95`, `p99.9`, ...).
pub fn metric_of(name: &str) -> Result<Metric, HistoryError> {
    name.parse()
}

fn answered_metric(name: &str) -> Result<Metric, HistoryError> {
    name.parse()
        .map_err(|_| malformed(&format!("unknown metric {name:?}")))
}

impl From<MetricComparison> for pb::HistoryMetricComparison {
    fn from(m: MetricComparison) -> Self {
        Self {
            metric: m.metric.name().to_owned(),
            a: m.a,
            b: m.b,
            delta: m.delta,
            relative: m.relative,
            regression: m.regression,
        }
    }
}

impl TryFrom<pb::HistoryMetricComparison> for MetricComparison {
    type Error = HistoryError;

    fn try_from(m: pb::HistoryMetricComparison) -> Result<Self, HistoryError> {
        Ok(Self {
            metric: answered_metric(&m.metric)?,
            a: m.a,
            b: m.b,
            delta: m.delta,
            relative: m.relative,
            regression: m.regression,
        })
    }
}

impl From<EndpointComparison> for pb::HistoryEndpointComparison {
    fn from(e: EndpointComparison) -> Self {
        Self {
            endpoint: e.endpoint,
            metrics: e.metrics.into_iter().map(Into::into).collect(),
            regression: e.regression,
        }
    }
}

impl TryFrom<pb::HistoryEndpointComparison> for EndpointComparison {
    type Error = HistoryError;

    fn try_from(e: pb::HistoryEndpointComparison) -> Result<Self, HistoryError> {
        Ok(Self {
            endpoint: e.endpoint,
            metrics: e
                .metrics
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            regression: e.regression,
        })
    }
}

impl From<Comparison> for pb::HistoryComparison {
    fn from(c: Comparison) -> Self {
        Self {
            a: Some(c.a.into()),
            b: Some(c.b.into()),
            window: Some(c.window.into()),
            tolerance: c.tolerance.0,
            endpoints: c.endpoints.into_iter().map(Into::into).collect(),
            total: Some(c.total.into()),
            only_in_a: c.only_in_a,
            only_in_b: c.only_in_b,
            regression: c.regression,
        }
    }
}

impl TryFrom<pb::HistoryComparison> for Comparison {
    type Error = HistoryError;

    fn try_from(c: pb::HistoryComparison) -> Result<Self, HistoryError> {
        Ok(Self {
            a: required(c.a, "run a")?.into(),
            b: required(c.b, "run b")?.into(),
            window: answered_window(c.window)?,
            tolerance: Tolerance(c.tolerance),
            endpoints: c
                .endpoints
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            total: required(c.total, "the total")?.try_into()?,
            only_in_a: c.only_in_a,
            only_in_b: c.only_in_b,
            regression: c.regression,
        })
    }
}

impl From<Trend> for pb::HistoryTrend {
    fn from(t: Trend) -> Self {
        Self {
            scenario_name: t.scenario,
            metric: t.metric.name().to_owned(),
            endpoint: t.endpoint,
            points: t
                .points
                .into_iter()
                .map(|p| pb::HistoryTrendPoint {
                    run_id: p.run_id,
                    started_at_ms: p.started_at_ms,
                    labels: p.labels.into_iter().collect(),
                    value: p.value,
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::HistoryTrend> for Trend {
    type Error = HistoryError;

    fn try_from(t: pb::HistoryTrend) -> Result<Self, HistoryError> {
        Ok(Self {
            scenario: t.scenario_name,
            metric: answered_metric(&t.metric)?,
            endpoint: t.endpoint,
            points: t
                .points
                .into_iter()
                .map(|p| TrendPoint {
                    run_id: p.run_id,
                    started_at_ms: p.started_at_ms,
                    labels: p.labels.into_iter().collect(),
                    value: p.value,
                })
                .collect(),
        })
    }
}

/// A trend request's endpoint: empty or `total` is every endpoint together.
pub fn endpoint_of(endpoint: &str) -> Option<&str> {
    match endpoint {
        "" | crate::TOTAL_NAME => None,
        name => Some(name),
    }
}

/// A trend request's run count: 0 is the default 30, at most [`MAX_LIMIT`].
pub fn last_of(last: u32) -> Result<u32, HistoryError> {
    match last {
        0 => Ok(DEFAULT_TREND_LAST),
        last if last > MAX_LIMIT => Err(HistoryError::Invalid(format!(
            "last {last} is above the maximum {MAX_LIMIT} runs"
        ))),
        last => Ok(last),
    }
}
