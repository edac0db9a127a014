//! `StartRun`: validate, place users, announce the run to the collector and
//! hand each worker its share.

use std::sync::Arc;
use std::time::Duration;

use cicada_proto::v1::controller_message::Msg;
use cicada_proto::v1::{
    ControllerMessage, CreateRunRequest, Endpoint, RunState, StartRunRequest, StartRunResponse,
    StartWork, Threshold as ThresholdMessage,
};
use cicada_scenario::{Metric, Op, Scenario, StageTarget, Threshold};

use crate::diagnosis::Goals;
use crate::lifecycle::{self, StopPolicy, unix_ms};
use crate::membership::Membership;
use crate::placing::Placing;
use crate::registry::Claimed;
use crate::runs::{Run, RunEvent};
use crate::shape::{Kind, Shape, Stage};
use crate::split::{self, Placement};
use crate::{ControllerError, Shared};

/// A validated `StartRun` request.
struct Plan {
    scenario: Scenario,
    host: String,
    /// Closed model: users. Open model: the in-flight bound (virtual users).
    users: u32,
    spawn_rate: f64,
    /// Open model: iterations per second across all workers (0 = closed model).
    rate: f64,
    run_time: Option<Duration>,
    grace: Duration,
    /// The load shape: users or a rate over time.
    shape: Option<Shape>,
    /// The open model: a rate of iterations, not looping users.
    open: bool,
    /// The scenario's thresholds, then the request's.
    thresholds: Vec<Threshold>,
    /// Its data files, checked.
    data: crate::data::RunData,
    /// The files of its `tls:` section, checked.
    tls_files: Vec<cicada_proto::v1::DataFile>,
}

/// The files of the scenario's `tls:` section: each one it names, none
/// other, each within the size limit (the workers parse them).
fn tls_files(
    scenario: &Scenario,
    source: &str,
    files: &[cicada_proto::v1::DataFile],
) -> Result<Vec<cicada_proto::v1::DataFile>, ControllerError> {
    let invalid = ControllerError::InvalidArgument;
    let wanted = scenario.tls().files();
    if let Some(extra) = files
        .iter()
        .find(|file| !wanted.iter().any(|(key, _)| *key == file.name))
    {
        return Err(invalid(format!(
            "{source}: a tls file {:?} was sent for tls.{}, which the scenario does not set",
            extra.path, extra.name
        )));
    }
    for (key, path) in wanted {
        let file = files.iter().find(|file| file.name == key).ok_or_else(|| {
            invalid(format!(
                "{source}: tls.{key}: its file {path} was not sent with the scenario (the CLI reads it next to the scenario file)"
            ))
        })?;
        if file.content.len() > cicada_scenario::MAX_TLS_FILE_BYTES {
            return Err(invalid(format!(
                "{source}: tls.{key}: {path} is {} bytes, over the limit of {} KiB",
                file.content.len(),
                cicada_scenario::MAX_TLS_FILE_BYTES >> 10
            )));
        }
    }
    Ok(files.to_vec())
}

fn validate(shared: &Shared, request: &StartRunRequest) -> Result<Plan, ControllerError> {
    let source = if request.scenario_path.is_empty() {
        "scenario"
    } else {
        request.scenario_path.as_str()
    };
    let scenario = Scenario::parse(source, &request.scenario_yaml)?;
    let data = crate::data::RunData::load(&scenario, source, &request.data)?;
    let tls_files = tls_files(&scenario, source, &request.tls_files)?;
    let shape = shape(request, &scenario)?;
    let rate_shape = shape.as_ref().is_some_and(|shape| shape.kind == Kind::Rate);
    // The open model: the request's rate, else the scenario's `rate:`, or
    // rate stages.
    let fixed_rate = if request.rate != 0.0 {
        request.rate
    } else {
        scenario.rate().unwrap_or(0.0)
    };
    if fixed_rate != 0.0 && !(fixed_rate.is_finite() && fixed_rate > 0.0) {
        return Err(ControllerError::InvalidArgument(
            "rate must be a positive number of iterations per second".into(),
        ));
    }
    if fixed_rate != 0.0 && shape.is_some() {
        return Err(ControllerError::InvalidArgument(
            "a fixed rate and stages cannot be combined: give rate stages, or a rate without stages".into(),
        ));
    }
    let open = fixed_rate != 0.0 || rate_shape;
    let rate = match &shape {
        Some(shape) if rate_shape => shape.at(Duration::ZERO),
        _ => fixed_rate,
    };
    // Users and spawn rate only matter in the closed model.
    let spawn_rate_ok = request.spawn_rate.is_finite() && request.spawn_rate > 0.0;
    if !open && !spawn_rate_ok {
        return Err(ControllerError::InvalidArgument(
            "spawn_rate must be a positive number".into(),
        ));
    }
    // The open model's users are its in-flight bound.
    let max_in_flight = match request.max_in_flight {
        0 => scenario.max_in_flight().unwrap_or(0),
        bound => bound,
    };
    let peak_rate = match &shape {
        Some(shape) if rate_shape => shape.peak(),
        _ => rate,
    };
    let users = match (open, max_in_flight, &shape) {
        (false, _, Some(shape)) => shape.users_at(Duration::ZERO),
        (false, _, None) => request.users,
        (true, 0, _) => split::default_max_in_flight(peak_rate),
        (true, bound, _) => bound,
    };
    let host = if request.host.is_empty() {
        scenario.host().ok_or(ControllerError::NoHost)?.to_owned()
    } else {
        request.host.clone()
    };
    let mut thresholds = scenario.thresholds().to_vec();
    for text in &request.thresholds {
        let threshold = Threshold::from_flag(text, scenario.endpoints()).map_err(|error| {
            ControllerError::InvalidArgument(format!("invalid threshold {text:?}: {error}"))
        })?;
        thresholds.push(threshold);
    }
    if request.prometheus_url.is_empty() != request.target_cpu_query.is_empty() {
        return Err(ControllerError::InvalidArgument(
            "target CPU sampling needs both a Prometheus URL and a query".into(),
        ));
    }
    if !request.prometheus_url.is_empty() && !request.prometheus_url.starts_with("http://") {
        return Err(ControllerError::InvalidArgument(format!(
            "the Prometheus URL must start with http:// (got {:?})",
            request.prometheus_url
        )));
    }
    let grace = if request.stop_grace_ms == 0 {
        shared.config.default_stop_grace
    } else {
        Duration::from_millis(request.stop_grace_ms)
    };
    if !open && shape.is_none() && request.users == 0 {
        return Err(ControllerError::InvalidArgument(
            "users must be greater than 0".into(),
        ));
    }
    let mut run_time =
        (request.run_time_ms > 0).then(|| Duration::from_millis(request.run_time_ms));
    if let Some(shape) = &shape {
        // The shape ends the run unless --run-time caps it earlier.
        let duration = shape.duration();
        run_time = Some(run_time.map_or(duration, |cap| cap.min(duration)));
    }
    Ok(Plan {
        users,
        open,
        scenario,
        host,
        spawn_rate: request.spawn_rate,
        rate,
        run_time,
        grace,
        shape,
        thresholds,
        data,
        tls_files,
    })
}

/// The throughput the run aims at: its rate in the open model, else a
/// total `rps >= N` (or `> N`) threshold.
fn goals(plan: &Plan) -> Goals {
    let rps = if plan.open {
        plan.shape
            .as_ref()
            .map_or(Some(plan.rate), |shape| Some(shape.peak()))
    } else {
        plan.thresholds
            .iter()
            .filter(|t| t.endpoint.is_none() && t.expr.metric == Metric::Rps)
            .filter(|t| matches!(t.expr.op, Op::Gt | Op::Ge))
            .map(|t| t.expr.limit)
            .reduce(f64::max)
    };
    Goals { rps }
}

/// The request's stages, or else the scenario's, as a shape.
fn shape(request: &StartRunRequest, scenario: &Scenario) -> Result<Option<Shape>, ControllerError> {
    // `None`: a stage to 0, which is 0 users or 0/s alike.
    let stages: Vec<(Duration, Option<Kind>, f64)> = if request.stages.is_empty() {
        scenario
            .stages()
            .iter()
            .map(|stage| match stage.target {
                StageTarget::Users(users) => (stage.duration, Some(Kind::Users), f64::from(users)),
                StageTarget::Rate(rate) => (stage.duration, Some(Kind::Rate), rate),
            })
            .collect()
    } else {
        request
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| {
                if stage.duration_ms == 0 {
                    return Err(ControllerError::InvalidArgument(format!(
                        "stage {}: duration must be more than 0",
                        index + 1
                    )));
                }
                if !(stage.rate.is_finite() && stage.rate >= 0.0) {
                    return Err(ControllerError::InvalidArgument(format!(
                        "stage {}: rate must be a number >= 0",
                        index + 1
                    )));
                }
                let duration = Duration::from_millis(stage.duration_ms);
                Ok(match (stage.users, stage.rate) {
                    (0, 0.0) => (duration, None, 0.0),
                    (users, 0.0) => (duration, Some(Kind::Users), f64::from(users)),
                    (0, rate) => (duration, Some(Kind::Rate), rate),
                    _ => {
                        return Err(ControllerError::InvalidArgument(format!(
                            "stage {}: give users or a rate, not both",
                            index + 1
                        )));
                    }
                })
            })
            .collect::<Result<_, _>>()?
    };
    if stages.is_empty() {
        return Ok(None);
    }
    let kind = stages
        .iter()
        .find_map(|&(_, kind, _)| kind)
        .unwrap_or(Kind::Users);
    if stages.iter().any(|&(_, k, _)| k.is_some_and(|k| k != kind)) {
        return Err(ControllerError::InvalidArgument(
            "all stages must ramp the same thing: users or a rate".into(),
        ));
    }
    let stages = stages
        .into_iter()
        .map(|(duration, _, target)| Stage { duration, target })
        .collect();
    Ok(Some(Shape { kind, stages }))
}

/// Starts a run; returns once every worker has been sent its `StartWork`.
pub(crate) async fn start_run(
    shared: &Arc<Shared>,
    request: StartRunRequest,
) -> Result<StartRunResponse, ControllerError> {
    // On its own task: a caller that goes away mid-way (a closed browser
    // tab, a cancelled gRPC call) drops only this future, while the start
    // either completes or unwinds its reservation and its workers; dropped
    // half-way it would leave the one run slot taken until a restart.
    let shared = shared.clone();
    match tokio::spawn(async move { start_detached(&shared, request).await }).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ControllerError::ShuttingDown),
    }
}

async fn start_detached(
    shared: &Arc<Shared>,
    request: StartRunRequest,
) -> Result<StartRunResponse, ControllerError> {
    if *shared.shutdown.borrow() {
        return Err(ControllerError::ShuttingDown);
    }
    let plan = validate(shared, &request)?;
    crate::target::check(&shared.config.allow_targets, &plan.host).await?;
    if request.expect_workers > 0 {
        wait_for_workers(shared, &request).await?;
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    shared.runs.reserve(&run_id)?;
    match place_and_announce(shared, &request, &plan, &run_id).await {
        Ok(workers) => Ok(launch(shared, &request, plan, run_id, workers)),
        Err(error) => {
            shared.runs.unreserve(&run_id);
            Err(error)
        }
    }
}

/// Waits (bounded) until `expect_workers` workers are connected.
async fn wait_for_workers(
    shared: &Shared,
    request: &StartRunRequest,
) -> Result<(), ControllerError> {
    let expected = request.expect_workers;
    let timeout = match request.expect_workers_timeout_ms {
        0 => DEFAULT_EXPECT_WORKERS_TIMEOUT,
        ms => Duration::from_millis(ms),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shutdown = shared.shutdown.clone();
    loop {
        let connected = shared.registry.len();
        if connected >= expected as usize {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ControllerError::TooFewWorkers {
                connected,
                expected,
                waited_s: timeout.as_secs(),
            });
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            () = crate::shut_down(&mut shutdown) => return Err(ControllerError::ShuttingDown),
        }
    }
}

/// How long `StartRun` waits for `expect_workers` when the request says nothing.
const DEFAULT_EXPECT_WORKERS_TIMEOUT: Duration = Duration::from_secs(60);

/// Claims the idle workers, splits the users and calls `CreateRun`.
async fn place_and_announce(
    shared: &Arc<Shared>,
    request: &StartRunRequest,
    plan: &Plan,
    run_id: &str,
) -> Result<Vec<(Claimed, Placement, f64)>, ControllerError> {
    let mut claimed = shared.registry.claim_idle(run_id);
    if claimed.is_empty() {
        return Err(ControllerError::NoWorkers);
    }
    let weights: Vec<u32> = plan
        .scenario
        .user_classes()
        .iter()
        .map(|class| class.weight)
        .collect();
    // Declared cores, or measured capacity when the workers differ in speed.
    let worker_weights = shared.registry.placement_weights(
        &claimed
            .iter()
            .map(|worker| (worker.worker_id.as_str(), worker.cores))
            .collect::<Vec<_>>(),
    );
    for (worker, weight) in claimed.iter_mut().zip(&worker_weights) {
        worker.weight = *weight;
    }
    let placements: Vec<(Placement, f64)> = if plan.open {
        split::split_open(plan.rate, plan.users, &weights, &worker_weights)
    } else {
        let placements = split::split(plan.users, &weights, &worker_weights);
        placements.into_iter().map(|p| (p, 0.0)).collect()
    };
    // A shaped run starts small and grows: every worker takes part from the
    // start, even with no user yet.
    let shaped = plan.shape.is_some();
    let (workers, idle): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .zip(placements)
        .map(|(worker, (placement, rate))| (worker, placement, rate))
        .partition(|(_, placement, _)| shaped || placement.users > 0);
    shared
        .registry
        .release(run_id, idle.iter().map(|(w, _, _)| w.worker_id.as_str()));

    let open = plan.open;
    let mut config = serde_json::json!({
        "model": if open { "open" } else { "closed" },
        "users": if open { 0 } else { plan.users },
        "spawn_rate": if open { 0.0 } else { plan.spawn_rate },
        "rate": plan.rate,
        "max_in_flight": if open { plan.users } else { 0 },
        "run_time_ms": request.run_time_ms,
        "stop_grace_ms": plan.grace.as_millis() as u64,
        "stages": plan.shape.iter().flat_map(|shape| shape.stages.iter().map(|stage| serde_json::json!({
            "duration_ms": stage.duration.as_millis() as u64,
            (if shape.kind == Kind::Rate { "rate" } else { "users" }): stage.target,
        }))).collect::<Vec<_>>(),
        "host": plan.host,
        "thresholds": plan.thresholds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "workers": workers.iter().map(|(w, p, rate)| serde_json::json!({
            "worker_id": w.worker_id,
            "cores": w.cores,
            "weight": w.weight,
            "users": p.users,
            "class_users": p.class_users,
            "rate": rate,
        })).collect::<Vec<_>>(),
    });
    if !request.target_cpu_query.is_empty() {
        // The collector samples it (it owns the run and the store).
        config["target_cpu"] = serde_json::json!({
            "prometheus_url": request.prometheus_url,
            "query": request.target_cpu_query,
        });
    }
    let create = CreateRunRequest {
        run_id: run_id.to_owned(),
        scenario_name: plan.scenario.name().to_owned(),
        scenario_yaml: request.scenario_yaml.clone(),
        host: plan.host.clone(),
        config_json: config.to_string(),
        labels: request.labels.clone(),
        started_at_ms: unix_ms(),
        endpoints: plan
            .scenario
            .endpoints()
            .iter()
            .enumerate()
            .map(|(index, endpoint)| Endpoint {
                index: index as u32,
                method: endpoint.method.clone(),
                name: endpoint.name.clone(),
            })
            .collect(),
        thresholds: plan
            .thresholds
            .iter()
            .map(|threshold| ThresholdMessage {
                expression: threshold.expr.to_string(),
                endpoint: threshold.endpoint.clone().unwrap_or_default(),
                abort_on_fail: threshold.abort_on_fail,
                delay_ms: threshold.delay.as_millis() as u64,
            })
            .collect(),
        checks: plan
            .scenario
            .checks()
            .iter()
            .enumerate()
            .map(|(index, check)| cicada_proto::v1::CheckDef {
                index: index as u32,
                endpoint: check.endpoint as u32,
                name: check.name.clone(),
            })
            .collect(),
    };
    let mut collector = shared.collector.clone();
    let result = tokio::time::timeout(
        shared.config.collector_timeout,
        collector.create_run(create),
    )
    .await;
    let error = match result {
        Ok(Ok(_)) => return Ok(workers),
        Ok(Err(status)) => ControllerError::collector("CreateRun", status),
        Err(_) => {
            ControllerError::collector("CreateRun", tonic::Status::deadline_exceeded("timed out"))
        }
    };
    // Nothing was sent to the workers yet: free them for the next attempt.
    shared
        .registry
        .release(run_id, workers.iter().map(|(w, _, _)| w.worker_id.as_str()));
    Err(error)
}

/// Registers the run, sends every worker its `StartWork` and spawns the
/// life cycle task.
fn launch(
    shared: &Arc<Shared>,
    request: &StartRunRequest,
    mut plan: Plan,
    run_id: String,
    workers: Vec<(Claimed, Placement, f64)>,
) -> StartRunResponse {
    let (run, events) = Run::new(run_id.clone(), plan.users, plan.rate, workers.len() as u32);
    let run_plan = crate::runs::RunPlan {
        scenario_name: plan.scenario.name().to_owned(),
        host: plan.host.clone(),
        started_at_ms: unix_ms(),
        run_time_ms: plan.run_time.map(|run_time| run_time.as_millis() as u64),
    };
    run.status.send_modify(|status| {
        status.open = plan.open;
        status.plan = run_plan;
    });
    shared.runs.insert(run.clone());
    let max_duration_ms = plan.run_time.map_or(0, |run_time| {
        (run_time + plan.grace + shared.config.max_duration_margin).as_millis() as u64
    });
    let template = StartWork {
        data: std::mem::take(&mut plan.data.shipped),
        tls_files: std::mem::take(&mut plan.tls_files),
        run_id: run_id.clone(),
        scenario_yaml: request.scenario_yaml.clone(),
        scenario_path: request.scenario_path.clone(),
        host: plan.host.clone(),
        collector_url: shared.config.collector_url.clone(),
        max_duration_ms,
        allow_targets: shared.config.allow_targets.to_strings(),
        ..StartWork::default()
    };
    let _ = run.data.set(std::mem::take(&mut plan.data));
    let open = plan.open;
    for (worker, placement, rate) in &workers {
        let message = ControllerMessage {
            msg: Some(Msg::StartWork(StartWork {
                class_users: placement.class_users.clone(),
                spawn_rate: if open {
                    0.0
                } else {
                    split::spawn_rate_share(plan.spawn_rate, placement.users, plan.users)
                },
                user_id_offset: placement.user_id_offset,
                rate: *rate,
                // The open model's pool of virtual users is `class_users`.
                max_in_flight: if open { placement.users } else { 0 },
                connection_rate: split::spawn_rate_share(
                    plan.scenario.connection_rate().unwrap_or(0.0),
                    placement.users,
                    plan.users,
                ),
                ..template.clone()
            })),
        };
        // A full or closed stream means the worker is as good as gone; the
        // life cycle task then does not wait for it.
        let sent = shared
            .registry
            .sender(&worker.worker_id)
            .is_some_and(|tx| tx.try_send(Ok(message)).is_ok());
        if !sent {
            tracing::warn!(run_id = %run_id, worker_id = %worker.worker_id, "failed to send StartWork");
            run.send(RunEvent::Gone {
                worker_id: worker.worker_id.clone(),
                last: None,
            });
        }
    }
    run.set_state(RunState::Running);
    tracing::info!(run_id = %run_id, users = plan.users, rate = plan.rate, workers = workers.len(), "run started");
    let goals = goals(&plan);
    let policy = StopPolicy {
        run_time: plan.run_time,
        grace: plan.grace,
        shape: plan.shape.clone(),
        failure: None,
        abort_on_fail: plan.thresholds.iter().any(|t| t.abort_on_fail),
        goals,
    };
    let weights = plan
        .scenario
        .user_classes()
        .iter()
        .map(|class| class.weight)
        .collect();
    let membership = Membership::new(
        weights,
        plan.users,
        plan.spawn_rate,
        workers
            .iter()
            .map(|(worker, placement, _)| (worker.worker_id.as_str(), worker.weight, placement)),
    );
    let membership = if plan.open {
        membership.open_model(plan.rate)
    } else {
        membership
    }
    .with_connection_rate(plan.scenario.connection_rate().unwrap_or(0.0));
    let placing = Placing {
        membership,
        template,
    };
    tokio::spawn(lifecycle::drive(
        shared.clone(),
        run,
        events,
        policy,
        placing,
    ));
    StartRunResponse {
        run_id,
        workers: workers.len() as u32,
    }
}
