//! `StartRun`: validate, place users, announce the run to the collector and
//! hand each worker its share.

use std::sync::Arc;
use std::time::Duration;

use cicada_proto::v1::controller_message::Msg;
use cicada_proto::v1::{
    ControllerMessage, CreateRunRequest, Endpoint, RunState, StartRunRequest, StartRunResponse,
    StartWork, Threshold as ThresholdMessage,
};
use cicada_scenario::{Scenario, Threshold};

use crate::lifecycle::{self, StopPolicy, unix_ms};
use crate::registry::Claimed;
use crate::runs::{Run, RunEvent};
use crate::split::{self, Placement};
use crate::{ControllerError, Shared};

/// A validated `StartRun` request.
struct Plan {
    scenario: Scenario,
    host: String,
    users: u32,
    spawn_rate: f64,
    run_time: Option<Duration>,
    grace: Duration,
    /// The scenario's thresholds, then the request's.
    thresholds: Vec<Threshold>,
}

fn validate(shared: &Shared, request: &StartRunRequest) -> Result<Plan, ControllerError> {
    if request.users == 0 {
        return Err(ControllerError::InvalidArgument(
            "users must be greater than 0".into(),
        ));
    }
    if !(request.spawn_rate.is_finite() && request.spawn_rate > 0.0) {
        return Err(ControllerError::InvalidArgument(
            "spawn_rate must be a positive number".into(),
        ));
    }
    let source = if request.scenario_path.is_empty() {
        "scenario"
    } else {
        request.scenario_path.as_str()
    };
    let scenario = Scenario::parse(source, &request.scenario_yaml)?;
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
    let grace = if request.stop_grace_ms == 0 {
        shared.config.default_stop_grace
    } else {
        Duration::from_millis(request.stop_grace_ms)
    };
    Ok(Plan {
        scenario,
        host,
        users: request.users,
        spawn_rate: request.spawn_rate,
        run_time: (request.run_time_ms > 0).then(|| Duration::from_millis(request.run_time_ms)),
        grace,
        thresholds,
    })
}

/// Starts a run; returns once every worker has been sent its `StartWork`.
pub(crate) async fn start_run(
    shared: &Arc<Shared>,
    request: StartRunRequest,
) -> Result<StartRunResponse, ControllerError> {
    if *shared.shutdown.borrow() {
        return Err(ControllerError::ShuttingDown);
    }
    let plan = validate(shared, &request)?;
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

/// Claims the idle workers, splits the users and calls `CreateRun`.
async fn place_and_announce(
    shared: &Arc<Shared>,
    request: &StartRunRequest,
    plan: &Plan,
    run_id: &str,
) -> Result<Vec<(Claimed, Placement)>, ControllerError> {
    let claimed = shared.registry.claim_idle(run_id);
    if claimed.is_empty() {
        return Err(ControllerError::NoWorkers);
    }
    let weights: Vec<u32> = plan
        .scenario
        .user_classes()
        .iter()
        .map(|class| class.weight)
        .collect();
    let cores: Vec<u32> = claimed.iter().map(|worker| worker.cores).collect();
    let placements = split::split(plan.users, &weights, &cores);
    let (workers, idle): (Vec<_>, Vec<_>) = claimed
        .into_iter()
        .zip(placements)
        .partition(|(_, placement)| placement.users > 0);
    shared
        .registry
        .release(run_id, idle.iter().map(|(w, _)| w.worker_id.as_str()));

    let config = serde_json::json!({
        "users": plan.users,
        "spawn_rate": plan.spawn_rate,
        "run_time_ms": request.run_time_ms,
        "stop_grace_ms": plan.grace.as_millis() as u64,
        "host": plan.host,
        "thresholds": plan.thresholds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "workers": workers.iter().map(|(w, p)| serde_json::json!({
            "worker_id": w.worker_id,
            "cores": w.cores,
            "users": p.users,
            "class_users": p.class_users,
        })).collect::<Vec<_>>(),
    });
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
        .release(run_id, workers.iter().map(|(w, _)| w.worker_id.as_str()));
    Err(error)
}

/// Registers the run, sends every worker its `StartWork` and spawns the
/// life cycle task.
fn launch(
    shared: &Arc<Shared>,
    request: &StartRunRequest,
    plan: Plan,
    run_id: String,
    workers: Vec<(Claimed, Placement)>,
) -> StartRunResponse {
    let ids: Vec<String> = workers.iter().map(|(w, _)| w.worker_id.clone()).collect();
    let (run, events) = Run::new(run_id.clone(), plan.users, ids);
    shared.runs.insert(run.clone());
    let max_duration_ms = plan.run_time.map_or(0, |run_time| {
        (run_time + plan.grace + shared.config.max_duration_margin).as_millis() as u64
    });
    for (worker, placement) in &workers {
        let message = ControllerMessage {
            msg: Some(Msg::StartWork(StartWork {
                run_id: run_id.clone(),
                scenario_yaml: request.scenario_yaml.clone(),
                scenario_path: request.scenario_path.clone(),
                host: plan.host.clone(),
                class_users: placement.class_users.clone(),
                spawn_rate: split::spawn_rate_share(plan.spawn_rate, placement.users, plan.users),
                collector_url: shared.config.collector_url.clone(),
                user_id_offset: placement.user_id_offset,
                max_duration_ms,
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
            });
        }
    }
    run.set_state(RunState::Running);
    tracing::info!(run_id = %run_id, users = plan.users, workers = workers.len(), "run started");
    let policy = StopPolicy {
        run_time: plan.run_time,
        grace: plan.grace,
        abort_on_fail: plan.thresholds.iter().any(|t| t.abort_on_fail),
    };
    tokio::spawn(lifecycle::drive(shared.clone(), run, events, policy));
    StartRunResponse {
        run_id,
        workers: workers.len() as u32,
    }
}
