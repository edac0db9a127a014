//! Protocol messages to store records, validating on the way so a bad delta
//! is rejected before anything of it is applied.

use std::collections::BTreeMap;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_proto::v1;
use cicada_store::{
    Delta, Endpoint, EndpointDelta, FailureCount, NewRun, RunFilter, RunRecord, RunStatus,
    ThresholdDef,
};

use crate::error::CollectorError;

fn invalid(message: String) -> CollectorError {
    CollectorError::InvalidArgument(message)
}

/// Most failure kinds one endpoint of one delta may list: the worker's
/// kinds plus one per HTTP status code fit many times over; a worker that
/// sends more is broken or hostile.
pub const MAX_FAILURE_KINDS: usize = 1024;

/// Longest failure message kept (bytes); a longer one is cut at a
/// character boundary (the message is an example, not evidence).
pub const MAX_FAILURE_MESSAGE_BYTES: usize = 1024;

/// `message` cut to [`MAX_FAILURE_MESSAGE_BYTES`].
fn bounded(message: &str) -> String {
    let mut end = message.len().min(MAX_FAILURE_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// A `CreateRun` request as a store record; `now_ms` stands in for a missing
/// start time. Thresholds are copied as they are; the service resolves
/// (and so checks) them before storing the run.
pub(crate) fn new_run(
    request: v1::CreateRunRequest,
    now_ms: i64,
) -> Result<NewRun, CollectorError> {
    if request.run_id.is_empty() {
        return Err(invalid("run_id is empty".to_owned()));
    }
    let config_json = if request.config_json.trim().is_empty() {
        "{}".to_owned()
    } else {
        serde_json::from_str::<serde_json::Value>(&request.config_json)
            .map_err(|error| invalid(format!("config_json is not JSON: {error}")))?;
        request.config_json
    };
    let started_at_ms = if request.started_at_ms > 0 {
        request.started_at_ms
    } else {
        now_ms
    };
    // The controller built the table from a scenario within the limit;
    // more rows would be a high-cardinality mistake or a hostile caller.
    if request.endpoints.len() > cicada_scenario::MAX_ENDPOINT_ROWS {
        return Err(invalid(format!(
            "run {} declares {} endpoints, over the limit of {}",
            request.run_id,
            request.endpoints.len(),
            cicada_scenario::MAX_ENDPOINT_ROWS
        )));
    }
    let endpoints: Vec<Endpoint> = request
        .endpoints
        .into_iter()
        .map(|e| Endpoint {
            index: e.index,
            method: e.method,
            name: e.name,
        })
        .collect();
    let thresholds: Vec<ThresholdDef> = request
        .thresholds
        .into_iter()
        .map(|t| ThresholdDef {
            expression: t.expression,
            endpoint: (!t.endpoint.is_empty()).then_some(t.endpoint),
            abort_on_fail: t.abort_on_fail,
            delay_ms: t.delay_ms,
        })
        .collect();
    let checks = request
        .checks
        .into_iter()
        .map(|c| cicada_store::CheckDef {
            index: c.index,
            endpoint: c.endpoint,
            name: c.name,
        })
        .collect();
    Ok(NewRun {
        id: request.run_id,
        scenario_name: request.scenario_name,
        scenario_yaml: request.scenario_yaml,
        host: request.host,
        config_json,
        labels: request.labels.into_iter().collect::<BTreeMap<_, _>>(),
        started_at_ms,
        endpoints,
        thresholds,
        checks,
    })
}

/// A worker delta as a store record, checked against a run with
/// `endpoint_count` endpoints: every endpoint in range and listed once, every
/// histogram decodable, seq at least 1.
pub(crate) fn delta(
    delta: &v1::WorkerDelta,
    endpoint_count: usize,
) -> Result<Delta, CollectorError> {
    if delta.worker_id.is_empty() {
        return Err(invalid(format!(
            "delta of run {} has no worker_id",
            delta.run_id
        )));
    }
    if delta.seq == 0 {
        return Err(invalid(format!(
            "delta of worker {} has seq 0; sequences start at 1",
            delta.worker_id
        )));
    }
    let mut seen = vec![false; endpoint_count];
    let mut endpoints = Vec::with_capacity(delta.endpoints.len());
    for endpoint in &delta.endpoints {
        let index = endpoint.endpoint as usize;
        let Some(seen) = seen.get_mut(index) else {
            return Err(invalid(format!(
                "delta {} of worker {} refers to endpoint {} but run {} has {} endpoints",
                delta.seq, delta.worker_id, endpoint.endpoint, delta.run_id, endpoint_count
            )));
        };
        if std::mem::replace(seen, true) {
            return Err(invalid(format!(
                "delta {} of worker {} lists endpoint {} twice",
                delta.seq, delta.worker_id, endpoint.endpoint
            )));
        }
        let histogram = LatencyHistogram::decode(&endpoint.histogram).map_err(|error| {
            invalid(format!(
                "delta {} of worker {} has a bad histogram for endpoint {}: {error}",
                delta.seq, delta.worker_id, endpoint.endpoint
            ))
        })?;
        // Empty in the closed model; present, it must decode like the other.
        let uncorrected = if endpoint.uncorrected_histogram.is_empty() {
            None
        } else {
            Some(
                LatencyHistogram::decode(&endpoint.uncorrected_histogram).map_err(|error| {
                    invalid(format!(
                        "delta {} of worker {} has a bad uncorrected histogram for endpoint {}: {error}",
                        delta.seq, delta.worker_id, endpoint.endpoint
                    ))
                })?,
            )
        };
        if endpoint.failures_by_kind.len() > MAX_FAILURE_KINDS {
            return Err(invalid(format!(
                "delta {} of worker {} lists {} failure kinds for endpoint {}, over the limit of {MAX_FAILURE_KINDS}",
                delta.seq,
                delta.worker_id,
                endpoint.failures_by_kind.len(),
                endpoint.endpoint
            )));
        }
        endpoints.push(EndpointDelta {
            endpoint: endpoint.endpoint,
            counts: Counts {
                requests: endpoint.requests,
                failures: endpoint.failures,
                cancelled: endpoint.cancelled,
                bytes: endpoint.bytes,
            },
            histogram,
            uncorrected,
            failures: endpoint
                .failures_by_kind
                .iter()
                .map(|f| FailureCount {
                    count: f.count,
                    kind: bounded(&f.kind),
                    last_message: bounded(&f.last_message),
                })
                .collect(),
            checks: endpoint
                .checks
                .iter()
                .map(|c| cicada_store::CheckCount {
                    check: c.check,
                    passed: c.passed,
                    failed: c.failed,
                })
                .collect(),
        });
    }
    // Loss markers (first_seq, evicted counts) are checked by the store.
    Ok(Delta {
        run_id: delta.run_id.clone(),
        worker_id: delta.worker_id.clone(),
        seq: delta.seq,
        first_seq: delta.first_seq,
        second: delta.second,
        active_users: delta.active_users,
        dropped: delta.dropped,
        endpoints,
        cut_at_ms: delta.cut_at_ms,
        interval_us: delta.interval_us,
        evicted: delta.evicted_requests.clone(),
    })
}

/// The protocol state of a stored run status.
pub(crate) fn run_state(status: RunStatus) -> v1::RunState {
    match status {
        RunStatus::Running => v1::RunState::Running,
        RunStatus::Finished => v1::RunState::Finished,
        RunStatus::Failed => v1::RunState::Failed,
    }
}

/// The store filter of a `ListRuns` request.
pub(crate) fn run_filter(request: &v1::ListRunsRequest) -> RunFilter {
    let status = match request.state() {
        v1::RunState::Running | v1::RunState::Starting | v1::RunState::Stopping => {
            Some(RunStatus::Running)
        }
        v1::RunState::Finished => Some(RunStatus::Finished),
        v1::RunState::Failed => Some(RunStatus::Failed),
        v1::RunState::Unspecified => None,
    };
    RunFilter {
        limit: match request.limit {
            0 => 50,
            n => n.min(1000),
        },
        scenario_name: (!request.scenario_name.is_empty()).then(|| request.scenario_name.clone()),
        status,
        started_before_ms: (request.started_before_ms > 0).then_some(request.started_before_ms),
        ..RunFilter::default()
    }
}

/// A stored run as `ListRuns` reports it.
pub(crate) fn run_summary(record: RunRecord) -> v1::RunSummary {
    v1::RunSummary {
        run_id: record.id,
        scenario_name: record.scenario_name,
        state: run_state(record.status) as i32,
        started_at_ms: record.started_at_ms,
        ended_at_ms: record.ended_at_ms.unwrap_or(0),
        host: record.host,
        labels: record.labels.into_iter().collect(),
        error: record.error.unwrap_or_default(),
    }
}

/// The stored status a `FinishRun` state asks for: failed, or finished for
/// anything else.
pub(crate) fn finish_status(state: i32) -> RunStatus {
    if state == v1::RunState::Failed as i32 {
        RunStatus::Failed
    } else {
        RunStatus::Finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker_delta(endpoints: Vec<v1::EndpointDelta>) -> v1::WorkerDelta {
        v1::WorkerDelta {
            run_id: "r".into(),
            worker_id: "w".into(),
            seq: 1,
            second: 10,
            endpoints,
            active_users: 3,
            dropped: 0,
            ..Default::default()
        }
    }

    fn endpoint(index: u32, histogram: Vec<u8>) -> v1::EndpointDelta {
        v1::EndpointDelta {
            endpoint: index,
            requests: 1,
            histogram,
            ..Default::default()
        }
    }

    #[test]
    fn valid_delta_decodes() {
        let mut h = LatencyHistogram::new();
        h.record_us(1500);
        let d = delta(&worker_delta(vec![endpoint(1, h.encode().unwrap())]), 2).unwrap();
        assert_eq!(d.endpoints[0].histogram, h);
        assert_eq!(d.endpoints[0].uncorrected, None);
        assert_eq!(d.endpoints[0].counts.requests, 1);
        assert_eq!(d.active_users, 3);
    }

    #[test]
    fn open_model_delta_decodes_uncorrected_and_dropped() {
        let mut h = LatencyHistogram::new();
        h.record_us(1500);
        let mut u = LatencyHistogram::new();
        u.record_us(700);
        let mut e = endpoint(0, h.encode().unwrap());
        e.uncorrected_histogram = u.encode().unwrap();
        let d = delta(
            &v1::WorkerDelta {
                dropped: 9,
                ..worker_delta(vec![e.clone()])
            },
            1,
        )
        .unwrap();
        assert_eq!(d.endpoints[0].uncorrected, Some(u));
        assert_eq!(d.dropped, 9);
        e.uncorrected_histogram = b"garbage".to_vec();
        let error = delta(&worker_delta(vec![e]), 1).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
    }

    #[test]
    fn bad_deltas_are_invalid_arguments() {
        let cases = [
            worker_delta(vec![endpoint(2, Vec::new())]),
            worker_delta(vec![endpoint(0, Vec::new()), endpoint(0, Vec::new())]),
            worker_delta(vec![endpoint(0, b"garbage".to_vec())]),
            v1::WorkerDelta {
                seq: 0,
                ..worker_delta(Vec::new())
            },
            v1::WorkerDelta {
                worker_id: String::new(),
                ..worker_delta(Vec::new())
            },
        ];
        for case in cases {
            let error = delta(&case, 2).unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");
        }
    }

    #[test]
    fn failure_kinds_and_messages_are_bounded() {
        let failure = |kind: String, message: String| v1::FailureCount {
            kind,
            count: 1,
            last_message: message,
        };
        let mut e = endpoint(0, Vec::new());
        // A long message is cut at the limit, on a character boundary.
        e.failures_by_kind = vec![failure(
            "connect".into(),
            "é".repeat(MAX_FAILURE_MESSAGE_BYTES),
        )];
        let d = delta(&worker_delta(vec![e.clone()]), 1).unwrap();
        let kept = &d.endpoints[0].failures[0].last_message;
        assert_eq!(kept.len(), MAX_FAILURE_MESSAGE_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
        e.failures_by_kind = (0..MAX_FAILURE_KINDS)
            .map(|i| failure(format!("status {i}"), String::new()))
            .collect();
        delta(&worker_delta(vec![e.clone()]), 1).unwrap();
        e.failures_by_kind
            .push(failure("one more".into(), String::new()));
        let error = delta(&worker_delta(vec![e]), 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid argument: delta 1 of worker w lists 1025 failure kinds for endpoint 0, over the limit of 1024"
        );
    }

    #[test]
    fn the_endpoint_table_is_bounded() {
        let table = |rows: usize| v1::CreateRunRequest {
            run_id: "r".into(),
            endpoints: (0..rows)
                .map(|index| v1::Endpoint {
                    index: index as u32,
                    method: "GET".into(),
                    name: format!("/item/{index}"),
                })
                .collect(),
            ..Default::default()
        };
        let limit = cicada_scenario::MAX_ENDPOINT_ROWS;
        assert_eq!(new_run(table(limit), 0).unwrap().endpoints.len(), limit);
        let error = new_run(table(limit + 1), 0).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            error.to_string(),
            "invalid argument: run r declares 3001 endpoints, over the limit of 3000"
        );
    }

    #[test]
    fn create_run_defaults_and_checks_json() {
        let request = v1::CreateRunRequest {
            run_id: "r".into(),
            ..Default::default()
        };
        let run = new_run(request.clone(), 42).unwrap();
        assert_eq!(run.config_json, "{}");
        assert_eq!(run.started_at_ms, 42);
        let bad = v1::CreateRunRequest {
            config_json: "{nope".into(),
            ..request
        };
        assert_eq!(
            new_run(bad, 0).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(new_run(v1::CreateRunRequest::default(), 0).is_err());
    }
}
