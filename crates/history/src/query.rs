//! The history queries: show a run, compare two, the latest passing
//! baseline, a metric's trend.

use std::collections::HashMap;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_store::{RunFilter, RunRecord, RunStatus, Store};

use crate::compare::compare_metrics;
use crate::load::{self, Totals};
use crate::model::{
    Comparison, EndpointMetrics, Metric, Metrics, RunDetail, RunInfo, SecondPoint, ThresholdInfo,
    Tolerance, Trend, TrendPoint, Window,
};
use crate::{HistoryError, TOTAL_NAME};

/// A run with its configuration, thresholds, per-endpoint numbers and
/// per-second series, over `window`.
pub async fn show(
    store: &dyn Store,
    run_id: &str,
    window: Window,
) -> Result<RunDetail, HistoryError> {
    let record = load::run(store, run_id).await?;
    let totals = load::totals(store, &record, window, load::now_ms()).await?;
    let (endpoints, total) = metrics_of(&totals)?;
    let start = record.started_at_ms.div_euclid(1000);
    let mut series: Vec<(i64, Counts, LatencyHistogram)> = Vec::new();
    for row in load::window_rows(store, &record, window).await? {
        if !totals.is_request(row.endpoint) {
            continue;
        }
        if series
            .last()
            .is_none_or(|(second, _, _)| *second != row.second)
        {
            series.push((row.second, Counts::default(), LatencyHistogram::new()));
        }
        let (_, counts, histogram) = series.last_mut().expect("pushed above");
        counts.add(&row.counts);
        load::merge(histogram, &row.histogram)?;
    }
    let users = users_by_second(store, &record, window).await?;
    let series = series
        .into_iter()
        .map(|(second, counts, histogram)| {
            let m = Metrics::new(counts, &histogram, 1.0);
            SecondPoint {
                t_s: second - start,
                requests: m.requests,
                failures: m.failures,
                p50_ms: m.p50_ms,
                p95_ms: m.p95_ms,
                p99_ms: m.p99_ms,
                users: users.get(&second).copied().unwrap_or(0),
            }
        })
        .collect();
    let thresholds = store
        .thresholds(run_id)
        .await?
        .into_iter()
        .map(|t| ThresholdInfo {
            expression: t.threshold.expression,
            endpoint: t.threshold.endpoint,
            observed: t.observed,
            passed: t.passed,
        })
        .collect();
    Ok(RunDetail {
        run: RunInfo::from(&record),
        config_json: record.config_json,
        scenario_yaml: record.scenario_yaml,
        thresholds,
        window,
        duration_s: totals.duration_s,
        endpoints,
        total,
        series,
    })
}

/// Users running per second (Unix seconds) within the window.
async fn users_by_second(
    store: &dyn Store,
    record: &RunRecord,
    window: Window,
) -> Result<HashMap<i64, u64>, HistoryError> {
    let start = record.started_at_ms.div_euclid(1000);
    let from = start.saturating_add(window.from_s as i64);
    let to = window
        .to_s
        .map_or(i64::MAX, |to| start.saturating_add(to as i64));
    Ok(store
        .active_users(&record.id, Some(from))
        .await?
        .into_iter()
        .filter(|row| row.second < to)
        .map(|row| (row.second, row.users))
        .collect())
}

fn metrics_of(totals: &Totals) -> Result<(Vec<EndpointMetrics>, Metrics), HistoryError> {
    let endpoints = totals
        .endpoints
        .iter()
        .map(|(name, counts, histogram)| EndpointMetrics {
            endpoint: name.clone(),
            metrics: Metrics::new(*counts, histogram, totals.duration_s),
        })
        .collect();
    let (counts, histogram) = totals.total()?;
    Ok((
        endpoints,
        Metrics::new(counts, &histogram, totals.duration_s),
    ))
}

/// Compares run `b` with the baseline `a` over the same window of each:
/// per endpoint (matched by `METHOD NAME`) and in total.
pub async fn compare(
    store: &dyn Store,
    a: &str,
    b: &str,
    window: Window,
    tolerance: Tolerance,
) -> Result<Comparison, HistoryError> {
    let now = load::now_ms();
    let (record_a, record_b) = (load::run(store, a).await?, load::run(store, b).await?);
    let (totals_a, totals_b) = (
        load::totals(store, &record_a, window, now).await?,
        load::totals(store, &record_b, window, now).await?,
    );
    let (endpoints_a, total_a) = metrics_of(&totals_a)?;
    let (endpoints_b, total_b) = metrics_of(&totals_b)?;
    let mut endpoints = Vec::new();
    let mut only_in_b = Vec::new();
    for eb in &endpoints_b {
        match endpoints_a.iter().find(|ea| ea.endpoint == eb.endpoint) {
            Some(ea) => endpoints.push(compare_metrics(
                &eb.endpoint,
                &ea.metrics,
                &eb.metrics,
                tolerance,
            )),
            None => only_in_b.push(eb.endpoint.clone()),
        }
    }
    let only_in_a = endpoints_a
        .iter()
        .filter(|ea| !endpoints_b.iter().any(|eb| eb.endpoint == ea.endpoint))
        .map(|ea| ea.endpoint.clone())
        .collect();
    let total = compare_metrics(TOTAL_NAME, &total_a, &total_b, tolerance);
    let regression = total.regression || endpoints.iter().any(|e| e.regression);
    Ok(Comparison {
        a: RunInfo::from(&record_a),
        b: RunInfo::from(&record_b),
        window,
        tolerance,
        endpoints,
        total,
        only_in_a,
        only_in_b,
        regression,
    })
}

/// The id of the latest passing run of `run_id`'s scenario started before
/// it (finished without error, every threshold passed).
pub async fn latest_passing_baseline(
    store: &dyn Store,
    run_id: &str,
) -> Result<String, HistoryError> {
    let record = load::run(store, run_id).await?;
    store
        .latest_passing_run(&record.scenario_name, record.started_at_ms)
        .await?
        .map(|r| r.id)
        .ok_or(HistoryError::NoBaseline {
            scenario: record.scenario_name,
            run_id: record.id,
        })
}

/// `metric` of `endpoint` (`METHOD NAME`, or all endpoints when `None`)
/// over the last `last` finished runs of `scenario`, oldest first.
pub async fn trend(
    store: &dyn Store,
    scenario: &str,
    metric: Metric,
    endpoint: Option<&str>,
    last: u32,
) -> Result<Trend, HistoryError> {
    if last == 0 {
        return Err(HistoryError::Invalid(
            "--last must be at least 1".to_owned(),
        ));
    }
    let filter = RunFilter {
        limit: last,
        scenario_name: Some(scenario.to_owned()),
        status: Some(RunStatus::Finished),
        ..RunFilter::default()
    };
    let runs = store.list_runs(&filter).await?;
    let mut points = Vec::with_capacity(runs.len());
    for record in runs.iter().rev() {
        let totals = load::totals(store, record, Window::default(), load::now_ms()).await?;
        let value =
            match endpoint {
                None => {
                    let (counts, histogram) = totals.total()?;
                    Some(metric.of(&Metrics::new(counts, &histogram, totals.duration_s)))
                }
                Some(name) => totals.endpoints.iter().find(|(n, _, _)| n == name).map(
                    |(_, counts, histogram)| {
                        metric.of(&Metrics::new(*counts, histogram, totals.duration_s))
                    },
                ),
            };
        points.push(TrendPoint {
            run_id: record.id.clone(),
            started_at_ms: record.started_at_ms,
            labels: record.labels.clone(),
            value,
        });
    }
    Ok(Trend {
        scenario: scenario.to_owned(),
        metric,
        endpoint: endpoint.unwrap_or(TOTAL_NAME).to_owned(),
        points,
    })
}
