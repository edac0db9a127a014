//! One run on this worker: parse the scenario, start the engine, cut an
//! interval at every wall-clock second into the pump, stop on `StopWork` (or
//! the safety-net limit), flush, and report `WorkDone`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cicada_proto::auth::AttachToken;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_proto::v1::{StartWork, WorkDone};
use cicada_scenario::Scenario;
use tokio::sync::watch;
use tonic::transport::Endpoint;

use crate::engine::{Engine, Load};
use crate::pump::Pump;
use crate::state::Node;

/// Runs `start` to its end and returns what to report.
pub(crate) async fn execute(
    node: Arc<Node>,
    start: StartWork,
    mut stop: watch::Receiver<Option<Duration>>,
) -> WorkDone {
    let run_id = start.run_id.clone();
    let failed = |error: String| {
        tracing::warn!(run_id = %run_id, %error, "cannot run this work");
        WorkDone {
            run_id: run_id.clone(),
            error,
            ..WorkDone::default()
        }
    };
    let source = if start.scenario_path.is_empty() {
        "scenario"
    } else {
        start.scenario_path.as_str()
    };
    let scenario = match Scenario::parse(source, &start.scenario_yaml) {
        Ok(scenario) => Arc::new(scenario),
        Err(error) => return failed(format!("invalid scenario: {error}")),
    };
    let collector = match Endpoint::from_shared(start.collector_url.clone()) {
        Ok(endpoint) => CollectorClient::new(
            AttachToken::new(node.config.token.as_ref()).wrap(
                endpoint
                    .connect_timeout(Duration::from_secs(5))
                    .connect_lazy(),
            ),
        ),
        Err(error) => {
            return failed(format!(
                "invalid collector url {:?}: {error}",
                start.collector_url
            ));
        }
    };
    let load = Load {
        class_users: start.class_users.clone(),
        spawn_rate: start.spawn_rate,
        user_id_offset: start.user_id_offset,
        rate: start.rate,
        max_in_flight: start.max_in_flight,
    };
    let mut engine_config = node.config.engine.clone();
    let timeouts = scenario.timeouts();
    engine_config.connect_timeout = timeouts.connect.unwrap_or(engine_config.connect_timeout);
    engine_config.request_timeout = timeouts.request.unwrap_or(engine_config.request_timeout);
    let engine = match Engine::start(scenario, &start.host, load, engine_config) {
        Ok(engine) => Arc::new(engine),
        Err(error) => return failed(format!("failed to start the engine: {error}")),
    };
    node.set_engine(&run_id, engine.clone());
    let users: u32 = start.class_users.iter().sum();
    tracing::info!(run_id = %run_id, users, spawn_rate = start.spawn_rate, rate = start.rate, max_in_flight = start.max_in_flight, "work started");

    // Sequence numbers start at 1 for every execution: a fresh source id
    // keeps a restarted worker's deltas from being taken for re-sent ones.
    let delta_source = format!("{}.{:08x}", node.config.worker_id, rand::random::<u32>());
    let mut pump = Pump::start(collector, &run_id, &delta_source);
    let limit = (start.max_duration_ms > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_millis(start.max_duration_ms));
    let mut interval_second = unix_now().as_secs() as i64;
    let grace = loop {
        let (wait, next_second) = until_next_second(unix_now());
        let safety_net = async {
            match limit {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                pump.record(interval_second, &engine.cut(), engine.active_users());
                interval_second = next_second;
            }
            changed = stop.wait_for(Option::is_some) => {
                break match changed {
                    Ok(grace) => grace.unwrap_or(node.config.default_stop_grace),
                    Err(_) => node.config.default_stop_grace,
                };
            }
            () = safety_net => {
                tracing::warn!(run_id = %run_id, "max duration reached without StopWork; stopping");
                break node.config.default_stop_grace;
            }
        }
    };

    tracing::info!(run_id = %run_id, grace_ms = grace.as_millis() as u64, "stopping work");
    engine.stop(grace).await;
    // What the users did since the last boundary, including cancellations.
    pump.record(interval_second, &engine.cut(), 0);
    let last_seq = pump.last_seq();
    let totals = pump.totals();
    let undelivered = pump.finish(node.config.flush_timeout).await;
    if undelivered > 0 {
        // Not a failure to run: the collector sees the gap below last_seq
        // and reports the run as incomplete.
        tracing::error!(run_id = %run_id, undelivered, "deltas were not acknowledged by the collector");
    }
    tracing::info!(run_id = %run_id, last_seq, requests = totals.requests, cancelled = totals.cancelled, undelivered, "work done");
    WorkDone {
        run_id,
        last_seq,
        requests: totals.requests,
        cancelled: totals.cancelled,
        error: String::new(),
        delta_source,
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Time until the next whole unix second after `now`, and that second.
fn until_next_second(now: Duration) -> (Duration, i64) {
    let next = now.as_secs() + 1;
    (Duration::from_secs(next) - now, next as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_second_boundary() {
        let (wait, second) = until_next_second(Duration::from_millis(1_700_000_000_250));
        assert_eq!(wait, Duration::from_millis(750));
        assert_eq!(second, 1_700_000_001);
        let (wait, second) = until_next_second(Duration::from_secs(5));
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(second, 6);
    }
}
