//! One run on this worker: parse the scenario, start the engine, cut an
//! interval at every `delta_interval` boundary of the wall clock (several
//! per second) into the pump, stop on `StopWork` (or
//! the safety-net limit), flush, and report `WorkDone`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cicada_proto::auth::{AttachToken, AuthChannel};
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::{StartWork, TakeRowsRequest, TakeRowsResponse, WorkDone};
use cicada_scenario::data::Pick;
use cicada_scenario::{Scenario, Table};
use cicada_tls::GrpcTarget;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::delta::Cut;
use crate::engine::{DataSets, Engine, Leased, Load, RowSource};
use crate::pump::Pump;
use crate::state::Node;

/// The run's data sets: whole files from `StartWork`, `unique` ones leased
/// from the controller.
fn data_sets(
    node: &Node,
    scenario: &Scenario,
    source: &str,
    start: &StartWork,
) -> Result<DataSets, String> {
    let mut sets = DataSets::none();
    if scenario.data().is_empty() {
        return Ok(sets);
    }
    let channel = GrpcTarget::new(&node.config.controller_url, &node.config.tls)
        .map_err(|e| e.to_string())?
        .with(|endpoint| endpoint.connect_timeout(Duration::from_secs(5)))
        .connect_lazy();
    let rows: Arc<dyn RowSource> = Arc::new(ControllerRows {
        client: ControllerClient::new(AttachToken::new(node.config.token.as_ref()).wrap(channel)),
        run_id: start.run_id.clone(),
        worker_id: node.config.worker_id.clone(),
    });
    for set in scenario.data() {
        if set.pick == Pick::Unique {
            sets.push_unique(
                set.columns.len(),
                rows.clone(),
                tokio::runtime::Handle::current(),
            );
            continue;
        }
        let file = start
            .data
            .iter()
            .find(|file| file.name == set.name)
            .ok_or_else(|| format!("data set {:?}: its file was not sent", set.name))?;
        let table =
            Table::parse(set, source, &file.path, &file.content).map_err(|e| e.to_string())?;
        sets.push_table(set.pick, table);
    }
    Ok(sets)
}

/// Leases `unique` rows with the controller's `TakeRows`.
struct ControllerRows {
    client: ControllerClient<AuthChannel>,
    run_id: String,
    worker_id: String,
}

impl ControllerRows {
    async fn call(
        mut client: ControllerClient<AuthChannel>,
        request: TakeRowsRequest,
    ) -> Result<TakeRowsResponse, String> {
        match tokio::time::timeout(Duration::from_secs(10), client.take_rows(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(_) => Err("TakeRows timed out after 10 s".to_owned()),
        }
    }

    fn request(&self, set: usize, count: u32, drained: bool) -> TakeRowsRequest {
        TakeRowsRequest {
            run_id: self.run_id.clone(),
            set: set as u32,
            count,
            worker_id: self.worker_id.clone(),
            drained,
        }
    }
}

impl RowSource for ControllerRows {
    fn take(&self, set: usize, count: u32) -> BoxFuture<'static, Result<Leased, String>> {
        let call = Self::call(self.client.clone(), self.request(set, count, false));
        Box::pin(async move {
            let response = call.await?;
            Ok(Leased {
                cells: response.cells,
                exhausted: response.exhausted,
            })
        })
    }

    fn drained(&self, set: usize) -> BoxFuture<'static, Result<(), String>> {
        let call = Self::call(self.client.clone(), self.request(set, 0, true));
        Box::pin(async move { call.await.map(drop) })
    }
}

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
    // The controller names the collector; the TLS files are this worker's.
    let collector = match GrpcTarget::new(&start.collector_url, &node.config.tls) {
        Ok(target) => CollectorClient::new(
            AttachToken::new(node.config.token.as_ref()).wrap(
                target
                    .with(|endpoint| endpoint.connect_timeout(Duration::from_secs(5)))
                    .connect_lazy(),
            ),
        )
        .max_decoding_message_size(cicada_proto::MAX_COLLECTOR_MESSAGE_BYTES),
        Err(error) => return failed(error.to_string()),
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
    engine_config.connection_rate = start.connection_rate;
    engine_config.allow_targets =
        match cicada_scenario::allow::AllowList::parse(&start.allow_targets) {
            Ok(list) => list,
            Err(error) => return failed(format!("the controller's allowed targets: {error}")),
        };
    engine_config.tls = match target_tls(&scenario, &start.tls_files) {
        Ok(tls) => tls,
        Err(error) => return failed(format!("{source}: {error}")),
    };
    // `{{ env.NAME }}`: this worker's environment (a Kubernetes Secret);
    // the values stay here, never sent anywhere.
    engine_config.env = match scenario.resolve_env(|name| std::env::var(name).ok()) {
        Ok(env) => env,
        Err(error) => return failed(format!("{source}: {error}")),
    };
    let data = match data_sets(&node, &scenario, source, &start) {
        Ok(data) => data,
        Err(error) => return failed(format!("invalid data: {error}")),
    };
    let engine = match Engine::start_with_data(scenario, &start.host, load, engine_config, data) {
        Ok(engine) => Arc::new(engine),
        Err(error) => return failed(format!("failed to start the engine: {error}")),
    };
    node.set_engine(&run_id, engine.clone());
    let users: u32 = start.class_users.iter().sum();
    tracing::info!(run_id = %run_id, users, spawn_rate = start.spawn_rate, rate = start.rate, max_in_flight = start.max_in_flight, "work started");

    // Sequence numbers start at 1 for every execution: a fresh source id
    // keeps a restarted worker's deltas from being taken for re-sent ones.
    let delta_source = format!("{}.{:08x}", node.config.worker_id, rand::random::<u32>());
    let mut pump = Pump::start(collector, &run_id, &delta_source, node.config.buffer);
    node.set_delivery(&run_id, pump.delivery(), &delta_source);
    let limit = (start.max_duration_ms > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_millis(start.max_duration_ms));
    let every_ms = node.config.delta_interval.as_millis().max(1) as u64;
    // The interval being recorded started at this wall-clock ms (a cut
    // boundary, or the start) and the monotonic instant of its start.
    let mut from_ms = unix_now().as_millis() as u64;
    let mut from = std::time::Instant::now();
    let grace = loop {
        let (wait, boundary_ms) = until_next_cut(unix_now(), every_ms);
        let safety_net = async {
            match limit {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                let whole_second = boundary_ms.is_multiple_of(1000);
                let cut = Cut {
                    second: (from_ms / 1000) as i64,
                    active_users: if whole_second { engine.active_users() } else { 0 },
                    cut_at_ms: unix_now().as_millis() as i64,
                    interval_us: from.elapsed().as_micros() as u64,
                };
                from = std::time::Instant::now();
                pump.record(&cut, &engine.cut());
                from_ms = boundary_ms;
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
    // What the users did since the last cut, including cancellations.
    let cut = Cut {
        second: (from_ms / 1000) as i64,
        active_users: 0,
        cut_at_ms: unix_now().as_millis() as i64,
        interval_us: from.elapsed().as_micros() as u64,
    };
    pump.record(&cut, &engine.cut());
    let last_seq = pump.last_seq();
    let totals = pump.totals();
    let evicted_requests = pump.evicted_requests();
    let undelivered = pump.finish(node.config.flush_timeout).await;
    if undelivered > 0 {
        // Not a failure to run: the collector sees the gap below last_seq
        // and reports the run as incomplete.
        tracing::error!(run_id = %run_id, undelivered, "deltas were not acknowledged by the collector");
    }
    tracing::info!(run_id = %run_id, last_seq, requests = totals.requests, cancelled = totals.cancelled, undelivered, evicted_requests, "work done");
    WorkDone {
        run_id,
        last_seq,
        requests: totals.requests,
        cancelled: totals.cancelled,
        error: String::new(),
        delta_source,
        evicted_requests,
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Time from `now` (since the Unix epoch) until the next cut boundary, a
/// multiple of `every_ms` (which divides 1000, so every interval lies
/// within one second), and that boundary in Unix ms.
fn until_next_cut(now: Duration, every_ms: u64) -> (Duration, u64) {
    let now_ms = now.as_millis() as u64;
    let next = (now_ms / every_ms + 1) * every_ms;
    (
        Duration::from_millis(next) - now.min(Duration::from_millis(next)),
        next,
    )
}

/// The scenario's `tls:` with the contents of its files (shipped in
/// `StartWork.tls_files`, keyed by the option).
fn target_tls(
    scenario: &Scenario,
    files: &[cicada_proto::v1::DataFile],
) -> Result<crate::engine::TargetTls, String> {
    let options = scenario.tls();
    let text = |key: &str| -> Result<Option<String>, String> {
        match files.iter().find(|file| file.name == key) {
            None => Ok(None),
            Some(file) => String::from_utf8(file.content.to_vec())
                .map(Some)
                .map_err(|_| format!("tls.{key}: {} is not PEM text", file.path)),
        }
    };
    let file = |key: &str| -> Result<String, String> {
        text(key)?.ok_or_else(|| format!("tls.{key}: its file was not shipped with the run"))
    };
    Ok(crate::engine::TargetTls {
        ca_pem: match &options.ca_file {
            Some(_) => Some(file("ca_file")?),
            None => None,
        },
        server_name: options.server_name.clone(),
        insecure_skip_verify: options.insecure_skip_verify,
        client: match &options.client {
            Some(_) => Some((file("client_cert")?, file("client_key")?)),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_boundaries() {
        let (wait, at) = until_next_cut(Duration::from_millis(1_700_000_000_250), 1000);
        assert_eq!(wait, Duration::from_millis(750));
        assert_eq!(at, 1_700_000_001_000);
        let (wait, at) = until_next_cut(Duration::from_secs(5), 1000);
        assert_eq!((wait, at), (Duration::from_secs(1), 6_000));
        let (wait, at) = until_next_cut(Duration::from_micros(1_700_000_000_250_500), 200);
        assert_eq!(wait, Duration::from_micros(149_500));
        assert_eq!(at, 1_700_000_000_400);
    }
}
