//! Starting a run on a controller and following it to the end: live progress
//! every 2 s on stderr, Ctrl-C stops the run cleanly (a second Ctrl-C quits).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cicada_proto::auth::{AttachToken, AuthChannel, Token};
use cicada_proto::health::{HealthCheckRequest, HealthClient};
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::{
    RunProgress, RunState, Stage, StartRunRequest, StopRunRequest, WatchRunRequest,
};
use cicada_tls::{ClientTls, GrpcTarget};

use crate::cli::LoadArgs;

/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A controller client whose calls carry the shared token (if any).
pub type Client = ControllerClient<AuthChannel>;

/// Connects to a controller, with a message that says where it tried.
pub async fn connect(controller_url: &str, token: Option<&Token>) -> anyhow::Result<Client> {
    connect_with_tls(controller_url, token, &ClientTls::default()).await
}

/// [`connect`] with TLS settings for an `https://` controller.
pub async fn connect_with_tls(
    controller_url: &str,
    token: Option<&Token>,
    tls: &ClientTls,
) -> anyhow::Result<Client> {
    let target = GrpcTarget::new(controller_url, tls)
        .with_context(|| format!("invalid controller url {controller_url:?}"))?;
    let failed = || {
        format!(
            "failed to connect to the controller at {controller_url}{}",
            plaintext_hint(&target)
        )
    };
    let channel = target.connect().await.with_context(failed)?;
    // A TLS server refuses a plaintext client (and an mTLS server one
    // without a certificate) only at its first request: ask the health
    // service (no token needed) so that failure says what to fix.
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
        .with_context(failed)?;
    Ok(ControllerClient::new(AttachToken::new(token).wrap(channel)))
}

/// What to try when a plaintext connection failed: the server may serve
/// TLS, which a plaintext client only sees as a closed connection.
pub fn plaintext_hint(target: &GrpcTarget) -> &'static str {
    if target.is_https() {
        ""
    } else {
        " (if it serves TLS, use an https:// url and --tls-ca; with mTLS also --tls-client-cert and --tls-client-key)"
    }
}

/// Builds the StartRun request from the load flags and the scenario text.
pub fn start_request(load: &LoadArgs, submission: crate::commands::Submission) -> StartRunRequest {
    StartRunRequest {
        scenario_yaml: submission.yaml,
        data: submission.data,
        tls_files: submission.tls_files,
        scenario_path: load.scenario.display().to_string(),
        host: load.host.clone().unwrap_or_default(),
        users: load.users,
        spawn_rate: load.spawn_rate,
        run_time_ms: load.run_time.map_or(0, |d| d.as_millis() as u64),
        labels: load.labels.iter().cloned().collect::<HashMap<_, _>>(),
        stop_grace_ms: load.stop_timeout.as_millis() as u64,
        thresholds: load.thresholds.clone(),
        stages: load
            .stages
            .iter()
            .map(|stage| Stage {
                duration_ms: stage.duration.as_millis() as u64,
                users: stage.users,
                rate: stage.rate,
            })
            .collect(),
        rate: load.rate.unwrap_or(0.0),
        max_in_flight: load.max_in_flight.unwrap_or(0),
        prometheus_url: load.prometheus_url.clone().unwrap_or_default(),
        target_cpu_query: load.target_cpu_query.clone().unwrap_or_default(),
        ..StartRunRequest::default()
    }
}

/// Starts the run and returns its id.
pub async fn start(client: &mut Client, request: StartRunRequest) -> anyhow::Result<(String, u32)> {
    let response = client
        .start_run(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))
        .context("the controller refused to start the run")?
        .into_inner();
    Ok((response.run_id, response.workers))
}

/// Follows a run until it has ended and returns its last progress message
/// (which carries the final statistics).
pub async fn follow(client: &mut Client, run_id: &str) -> anyhow::Result<RunProgress> {
    let mut stream = client
        .watch_run(WatchRunRequest {
            run_id: run_id.to_owned(),
        })
        .await
        .context("failed to watch the run")?
        .into_inner();
    let started = Instant::now();
    let mut last_print: Option<Instant> = None;
    let mut latest: Option<RunProgress> = None;
    let mut interrupts = 0u32;
    let mut told: Vec<i32> = Vec::new();
    let mut warned = Warned::default();
    // One listener for the whole watch, so a Ctrl-C that arrives while the
    // stop request is in flight is not lost.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("failed to listen for Ctrl-C")?;
    loop {
        tokio::select! {
            message = stream.message() => {
                let message = message.context("lost the connection to the controller while watching the run")?;
                let Some(progress) = message else { break };
                let ended = is_terminal(progress.state());
                if !ended && last_print.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
                    eprintln!("{}", progress_line(&progress, started.elapsed()));
                    last_print = Some(Instant::now());
                }
                // Each situation once, as soon as it shows.
                for diagnosis in &progress.diagnoses {
                    if !ended && !told.contains(&diagnosis.kind) {
                        told.push(diagnosis.kind);
                        eprintln!("diagnosis: {}", diagnosis.summary);
                    }
                }
                if !ended {
                    for warning in delivery_warnings(&progress, &mut warned) {
                        eprintln!("{warning}");
                    }
                }
                latest = Some(progress);
                if ended {
                    break;
                }
            }
            _ = interrupt.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    eprintln!("interrupted again: quitting without waiting for the final numbers");
                    std::process::exit(130);
                }
                eprintln!("stopping the run (in-flight requests may finish; Ctrl-C again to quit)");
                client
                    .stop_run(StopRunRequest { run_id: run_id.to_owned() })
                    .await
                    .map_err(|status| anyhow::anyhow!("{}", status.message()))
                    .context("failed to stop the run")?;
            }
        }
    }
    let Some(progress) = latest else {
        bail!("the controller ended the watch of run {run_id} without any progress")
    };
    if !is_terminal(progress.state()) {
        bail!("the watch of run {run_id} ended before the run did");
    }
    Ok(progress)
}

/// What the watcher has already been warned about.
#[derive(Debug, Default)]
pub struct Warned {
    unreachable: bool,
    behind: bool,
    lost: Vec<String>,
    evicted: u64,
}

/// Warnings about the delivery of the run's numbers (collector unreachable,
/// workers behind, lost workers, evicted deltas), each when it starts and
/// when it ends.
pub fn delivery_warnings(progress: &RunProgress, warned: &mut Warned) -> Vec<String> {
    let mut out = Vec::new();
    let Some(delivery) = &progress.delivery else {
        return out;
    };
    let unreachable = !delivery.controller_error.is_empty();
    if unreachable && !warned.unreachable {
        out.push(format!(
            "warning: the collector is unreachable ({}); workers keep their numbers and resend them",
            delivery.controller_error
        ));
    } else if !unreachable && warned.unreachable {
        out.push("the collector is reachable again".to_owned());
    }
    warned.unreachable = unreachable;
    let behind = delivery.workers_behind > 0;
    if behind && !warned.behind {
        let error = if delivery.last_error.is_empty() {
            String::new()
        } else {
            format!(": {}", delivery.last_error)
        };
        out.push(format!(
            "warning: {} workers cannot deliver their numbers to the collector ({} deltas waiting, oldest {:.1} s){error}",
            delivery.workers_behind,
            delivery.pending_deltas,
            delivery.oldest_pending_ms as f64 / 1000.0
        ));
    } else if !behind && warned.behind {
        out.push("workers deliver their numbers again".to_owned());
    }
    warned.behind = behind;
    for worker in &delivery.lost_workers {
        if !warned.lost.contains(worker) {
            out.push(format!(
                "warning: worker {worker} disappeared without its final flush; the final report bounds what it took with it"
            ));
            warned.lost.push(worker.clone());
        }
    }
    if delivery.evicted_requests > warned.evicted {
        out.push(format!(
            "warning: {} requests lost: worker buffers were full and dropped their oldest deltas",
            delivery.evicted_requests
        ));
        warned.evicted = delivery.evicted_requests;
    }
    out
}

fn is_terminal(state: RunState) -> bool {
    matches!(state, RunState::Finished | RunState::Failed)
}

/// One live progress line: elapsed, users, current RPS, failures, p50/p95.
pub fn progress_line(progress: &RunProgress, elapsed: Duration) -> String {
    let stats = progress.stats.clone().unwrap_or_default();
    let total = stats.total.unwrap_or_default();
    let failure_pct = if total.requests > 0 {
        100.0 * total.failures as f64 / total.requests as f64
    } else {
        0.0
    };
    if progress.target_rate > 0.0 {
        // Open model: the target rate, what was achieved, and the drops.
        return format!(
            "[{:>5}s] {:<8} rate {:.1}/s on {} workers, {}/{} in flight | {:>9.1} req/s | requests {} | dropped {} ({:.1}/s) | failures {} ({:.2}%) | p50 {:.2} ms | p95 {:.2} ms",
            elapsed.as_secs(),
            state_name(progress.state()),
            progress.target_rate,
            progress.workers,
            progress.active_users,
            progress.target_users,
            stats.current_rps,
            total.requests,
            stats.dropped,
            stats.current_dropped_per_s,
            total.failures,
            failure_pct,
            stats.current_p50_ms,
            stats.current_p95_ms,
        );
    }
    format!(
        "[{:>5}s] {:<8} users {}/{} on {} workers | {:>9.1} req/s | requests {} | failures {} ({:.2}%) {:.1}/s | p50 {:.2} ms | p95 {:.2} ms",
        elapsed.as_secs(),
        state_name(progress.state()),
        progress.active_users,
        progress.target_users,
        progress.workers,
        stats.current_rps,
        total.requests,
        total.failures,
        failure_pct,
        stats.current_failures_per_s,
        stats.current_p50_ms,
        stats.current_p95_ms,
    )
}

pub fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Unspecified => "unknown",
        RunState::Starting => "starting",
        RunState::Running => "running",
        RunState::Stopping => "stopping",
        RunState::Finished => "finished",
        RunState::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cicada_proto::v1::{EndpointStats, RunStats};

    #[test]
    fn delivery_trouble_is_warned_once_when_it_starts_and_ends() {
        let mut warned = Warned::default();
        let mut progress = RunProgress {
            delivery: Some(cicada_proto::v1::RunDelivery {
                controller_error: "Unavailable: connection refused".into(),
                workers_behind: 2,
                pending_deltas: 30,
                oldest_pending_ms: 3_500,
                last_error: "transport error".into(),
                lost_workers: vec!["w3".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let first = delivery_warnings(&progress, &mut warned);
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first[0].contains("collector is unreachable (Unavailable: connection refused)"));
        assert!(first[1].contains("2 workers cannot deliver") && first[1].contains("oldest 3.5 s"));
        assert!(first[2].contains("worker w3 disappeared"));
        assert!(
            delivery_warnings(&progress, &mut warned).is_empty(),
            "said once"
        );
        progress.delivery = Some(cicada_proto::v1::RunDelivery {
            lost_workers: vec!["w3".into()],
            ..Default::default()
        });
        let healed = delivery_warnings(&progress, &mut warned);
        assert_eq!(
            healed,
            [
                "the collector is reachable again",
                "workers deliver their numbers again"
            ]
        );
    }

    #[test]
    fn progress_line_shows_the_live_numbers() {
        let progress = RunProgress {
            run_id: "r".into(),
            state: RunState::Running as i32,
            target_users: 200,
            active_users: 150,
            workers: 2,
            stats: Some(RunStats {
                current_rps: 1234.5,
                current_p50_ms: 1.5,
                current_p95_ms: 9.25,
                total: Some(EndpointStats {
                    requests: 1000,
                    failures: 10,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = progress_line(&progress, Duration::from_secs(12));
        assert!(line.contains("users 150/200 on 2 workers"), "{line}");
        assert!(line.contains("1234.5 req/s"), "{line}");
        assert!(line.contains("failures 10 (1.00%)"), "{line}");
        assert!(line.contains("p50 1.50 ms | p95 9.25 ms"), "{line}");
    }

    #[test]
    fn open_model_progress_shows_the_rate_and_drops() {
        let progress = RunProgress {
            state: RunState::Running as i32,
            target_rate: 500.0,
            target_users: 100,
            active_users: 7,
            workers: 2,
            stats: Some(RunStats {
                current_rps: 499.5,
                dropped: 12,
                current_dropped_per_s: 1.5,
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = progress_line(&progress, Duration::from_secs(3));
        assert!(
            line.contains("rate 500.0/s on 2 workers, 7/100 in flight"),
            "{line}"
        );
        assert!(line.contains("dropped 12 (1.5/s)"), "{line}");
    }
}
