//! The measured phases, in order: connect, idle, place, run, stop.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::{
    ListWorkersRequest, RunState, StartRunRequest, StopRunRequest, WatchRunRequest,
};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::fleet::Fleet;
use crate::procs;
use crate::report::{Connect, Placement, Steady, Stop};
use crate::{check, scenario};

/// Upper bounds of the waits: far above anything a healthy controller needs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
const PLACE_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The run's own time limit, beyond the hold: a safety net should `StopRun`
/// never arrive (the run then still ends by itself).
const RUN_TIME_MARGIN: Duration = Duration::from_secs(30);

/// Where the services are and how to read their CPU.
pub struct Bench {
    pub fleet: Fleet,
    pub client: ControllerClient<Channel>,
    pub controller_pid: u32,
    pub collector_pid: u32,
    pub ticks: f64,
}

/// What `WatchRun` showed.
pub struct Watched {
    /// First progress message with every user active.
    all_active_at: Option<Instant>,
    /// The last message (terminal state).
    final_at: Option<Instant>,
    final_state: RunState,
}

impl Bench {
    /// Waits until every worker is registered; checks `ListWorkers`.
    pub async fn connect(&mut self, started: Instant) -> anyhow::Result<Connect> {
        let n = self.fleet.len();
        let all = self
            .fleet
            .until(started + CONNECT_TIMEOUT, |f| f.registered == n)
            .await?;
        ensure!(
            all,
            "only {} of {n} workers registered within {CONNECT_TIMEOUT:?}",
            self.fleet.registered
        );
        let seconds = started.elapsed().as_secs_f64();
        let listed = self
            .client
            .list_workers(ListWorkersRequest {})
            .await?
            .into_inner()
            .workers
            .len();
        ensure!(
            listed == n,
            "ListWorkers lists {listed} workers, expected {n}"
        );
        Ok(Connect {
            seconds,
            workers_listed: listed,
        })
    }

    /// Controller CPU per heartbeat over `length`, while events keep flowing.
    pub async fn steady(&mut self, length: Duration) -> anyhow::Result<Steady> {
        let me = std::process::id();
        let cpu = |pid| procs::cpu_seconds(pid, self.ticks);
        let (ctl0, col0, me0) = (
            cpu(self.controller_pid)?,
            cpu(self.collector_pid)?,
            cpu(me)?,
        );
        let busy0 = procs::machine_busy_seconds(self.ticks)?;
        let heartbeats0 = self.fleet.heartbeats();
        let start = Instant::now();
        self.fleet.idle_until(start + length).await?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = |pid| procs::cpu_seconds(pid, self.ticks);
        let busy = procs::machine_busy_seconds(self.ticks)? - busy0;
        let controller_cpu_s = cpu(self.controller_pid)? - ctl0;
        let collector_cpu_s = cpu(self.collector_pid)? - col0;
        let bench_cpu_s = cpu(me)? - me0;
        let heartbeats = self.fleet.heartbeats() - heartbeats0;
        Ok(Steady {
            seconds,
            heartbeats,
            heartbeats_per_s: heartbeats as f64 / seconds,
            controller_cpu_s,
            controller_cpu_us_per_heartbeat: controller_cpu_s * 1e6 / heartbeats.max(1) as f64,
            controller_core_percent: controller_cpu_s * 100.0 / seconds,
            controller_rss_kib: procs::rss_kib(self.controller_pid)?.0,
            collector_cpu_s,
            bench_cpu_s,
            other_cpu_s: busy - controller_cpu_s - collector_cpu_s - bench_cpu_s,
        })
    }

    /// `StartRun`, then waits until every worker of the run has its
    /// `StartWork`, and checks the split. Leaves a `WatchRun` stream open.
    pub async fn place(
        &mut self,
        classes: usize,
        users: u32,
        spawn_rate: f64,
        hold: Duration,
        start: Instant,
    ) -> anyhow::Result<(Placement, JoinHandle<anyhow::Result<Watched>>)> {
        let request = StartRunRequest {
            scenario_yaml: scenario::yaml(classes),
            scenario_path: "controller-scale.yaml".to_owned(),
            host: String::new(),
            users,
            spawn_rate,
            run_time_ms: (hold + RUN_TIME_MARGIN).as_millis() as u64,
            labels: [("bench".to_owned(), "controller-scale".to_owned())].into(),
            stop_grace_ms: 1000,
            ..StartRunRequest::default()
        };
        let response = self
            .client
            .start_run(request)
            .await
            .context("StartRun failed")?
            .into_inner();
        let start_run_rpc_ms = ms(start.elapsed());
        let watch = tokio::spawn(watch(self.client.clone(), response.run_id.clone(), users));
        let expected = response.workers as usize;
        let all = self
            .fleet
            .until(start + PLACE_TIMEOUT, |f| f.started_count >= expected)
            .await?;
        ensure!(
            all,
            "only {} of {expected} workers got StartWork within {PLACE_TIMEOUT:?}",
            self.fleet.started_count
        );
        let last = self.fleet.last_started_at.context("no StartWork")?;
        let received = self.fleet.received(&response.run_id);
        let split = check::check(users, &scenario::weights(classes), &received);
        Ok((
            Placement {
                run_id: response.run_id,
                start_run_rpc_ms,
                all_start_work_ms: ms(last.saturating_duration_since(start)),
                workers_in_run: response.workers,
                workers_started: received.len(),
                split,
                all_users_active_ms: None,
            },
            watch,
        ))
    }

    /// `StopRun`, then waits for every `StopWork` and the run's end.
    pub async fn stop(
        &mut self,
        run_id: &str,
        workers: usize,
        watch: JoinHandle<anyhow::Result<Watched>>,
        placed_at: Instant,
    ) -> anyhow::Result<(Stop, Option<f64>)> {
        let start = Instant::now();
        self.client
            .stop_run(StopRunRequest {
                run_id: run_id.to_owned(),
            })
            .await
            .context("StopRun failed")?;
        let stop_run_rpc_ms = ms(start.elapsed());
        let all = self
            .fleet
            .until(start + STOP_TIMEOUT, |f| f.stopped_count >= workers)
            .await?;
        ensure!(
            all,
            "only {} of {workers} workers got StopWork within {STOP_TIMEOUT:?}",
            self.fleet.stopped_count
        );
        let last = self.fleet.last_stopped_at.context("no StopWork")?;
        let watched = match tokio::time::timeout(STOP_TIMEOUT, watch).await {
            Ok(joined) => joined.context("the watch task panicked")??,
            Err(_) => bail!("the run did not finish within {STOP_TIMEOUT:?} of StopRun"),
        };
        let all_active_ms = watched
            .all_active_at
            .map(|at| ms(at.saturating_duration_since(placed_at)));
        Ok((
            Stop {
                stop_run_rpc_ms,
                all_stop_work_ms: ms(last.saturating_duration_since(start)),
                workers_stopped: self.fleet.stopped_count,
                finished_ms: watched
                    .final_at
                    .map(|at| ms(at.saturating_duration_since(start))),
                final_state: watched.final_state.as_str_name().to_owned(),
            },
            all_active_ms,
        ))
    }
}

/// Follows `WatchRun` to its end, as `cicada start` does.
async fn watch(
    mut client: ControllerClient<Channel>,
    run_id: String,
    users: u32,
) -> anyhow::Result<Watched> {
    let mut stream = client
        .watch_run(WatchRunRequest { run_id })
        .await?
        .into_inner();
    let mut watched = Watched {
        all_active_at: None,
        final_at: None,
        final_state: RunState::Unspecified,
    };
    while let Some(progress) = stream.message().await? {
        if watched.all_active_at.is_none() && progress.active_users == users {
            watched.all_active_at = Some(Instant::now());
        }
        let state = progress.state();
        if matches!(state, RunState::Finished | RunState::Failed) {
            watched.final_at = Some(Instant::now());
            watched.final_state = state;
        }
    }
    Ok(watched)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
