//! The load engine: virtual users running a scenario against one host.
//!
//! Users run on `threads` OS threads, each with its own current-thread tokio
//! runtime (wrk style), so a user's requests never leave its thread. Each
//! thread records into its own stats shard (per-endpoint histograms and
//! counts) behind a mutex that only [`Engine::cut`] contends, once a second.
//!
//! Layout:
//! - `target`: the host, timed TCP/TLS connects, HTTP/1.1 or HTTP/2 senders
//! - `pacer`: the worker's limit of new connections per second
//! - `h1`: the HTTP/1.1 client (encode, parse with httparse, frame bodies)
//! - `plan`: the scenario prepared for sending (methods, static URIs and bodies)
//! - `stats`: per-thread shards, the in-flight guard and the merge in `cut`
//! - `user`: one virtual user's loop and the request hot path
//! - `thread`: the OS threads and their commands
//! - `ramp`: the spawn order (classes interleaved) and the spawner
//! - `arrival`: the open model (iterations at a fixed rate, bounded users)
//! - `data`: rows of the scenario's data sets, `unique` ones leased

mod arrival;
mod data;
mod h1;
mod jar;
mod pacer;
mod plan;
mod ramp;
mod stats;
mod target;
mod thread;
mod user;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_scenario::Scenario;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use stats::ThreadStats;
use thread::Command;

pub use data::{DataSets, Leased, RowSource};
pub use target::TargetTls;

/// Engine tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// OS threads running users (0 = one per available core).
    pub threads: usize,
    /// Extra CA certificates (PEM) to trust for https hosts, besides the
    /// public web roots (for targets with a private CA).
    pub tls_ca_pem: Option<String>,
    /// New connections per second this worker opens at most (its share of
    /// the scenario's `connection: {rate}`; 0 = no limit).
    pub connection_rate: f64,
    /// The scenario's `tls:` with its files' contents (https targets).
    pub tls: target::TargetTls,
    /// The values of the environment variables the scenario reads
    /// (`{{ env.NAME }}`), taken from the worker's environment.
    pub env: cicada_scenario::EnvValues,
    /// The controller's `--allow-target` list (empty: any address): a
    /// connection goes only to an address it allows.
    pub allow_targets: cicada_scenario::allow::AllowList,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            threads: 0,
            tls_ca_pem: None,
            connection_rate: 0.0,
            tls: Default::default(),
            env: Default::default(),
            allow_targets: Default::default(),
        }
    }
}

/// This worker's share of a run.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Users per user class, indexed like `Scenario::user_classes()`.
    pub class_users: Vec<u32>,
    /// Users per second to spawn at (<= 0 or not finite: all at once).
    pub spawn_rate: f64,
    /// Global index of this worker's first user.
    pub user_id_offset: u64,
    /// Open model: iterations started per second whatever the response
    /// times (0 = closed model). `class_users` is then the pool of virtual
    /// users the iterations run on, and adds up to `max_in_flight`.
    pub rate: f64,
    /// Open model: most iterations in flight at once; an iteration due while
    /// this many run is dropped (and counted in `Interval::dropped`).
    pub max_in_flight: u32,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("invalid load: {reason}")]
    InvalidLoad { reason: String },
    #[error("invalid request {endpoint:?}: {reason}")]
    InvalidRequest { endpoint: String, reason: String },
    #[error("{0}")]
    Env(String),
    #[error("invalid TLS configuration: {reason}")]
    InvalidTls { reason: String },
    #[error("failed to start engine thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Counts of one failure kind within an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureKindCount {
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

/// What one endpoint recorded since the previous cut. Every completed
/// request (success or failure) is in both `counts.requests` and `histogram`
/// (and, in the open model, in `uncorrected`).
#[derive(Debug, Clone, Default)]
pub struct EndpointInterval {
    pub counts: Counts,
    /// Latencies; in the open model measured from the intended start.
    pub histogram: LatencyHistogram,
    /// Open model only: latencies measured from the actual send.
    pub uncorrected: LatencyHistogram,
    pub failures_by_kind: Vec<FailureKindCount>,
    /// Outcomes of the checks of this endpoint's requests (`check:`).
    pub checks: Vec<CheckCount>,
}

/// How often one check (`Scenario::checks()` index) passed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCount {
    pub check: u32,
    pub passed: u64,
    pub failed: u64,
}

impl CheckCount {
    /// Adds one outcome of `check` to `counts`.
    pub(crate) fn add(counts: &mut Vec<CheckCount>, check: u32, passed: u64, failed: u64) {
        match counts.iter_mut().find(|c| c.check == check) {
            Some(count) => {
                count.passed += passed;
                count.failed += failed;
            }
            None => counts.push(CheckCount {
                check,
                passed,
                failed,
            }),
        }
    }
}

/// Everything recorded since the previous cut, indexed like `Scenario::endpoints()`.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub endpoints: Vec<EndpointInterval>,
    /// Open model: iterations due but not started because every virtual
    /// user was busy (`max_in_flight` reached).
    pub dropped: u64,
}

impl Interval {
    /// All endpoints' counts added up.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for endpoint in &self.endpoints {
            total.add(&endpoint.counts);
        }
        total
    }
}

/// A running load.
pub struct Engine {
    _scenario: Arc<Scenario>,
    endpoint_count: usize,
    threads: Vec<Arc<ThreadStats>>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
    spawner: JoinHandle<()>,
    /// The load the ramp moves toward; replaced by [`Engine::retarget`].
    load: watch::Sender<Load>,
    spawned: Arc<AtomicU64>,
    finished_threads: watch::Receiver<usize>,
    /// The open model's schedule; `None` in the closed model.
    arrivals: Option<arrival::Arrivals>,
    /// The limit of new connections per second, shared by every thread.
    pacer: Arc<pacer::ConnectPacer>,
}

impl Engine {
    /// Starts ramping users of a scenario without data sets. Must be
    /// called within a tokio runtime.
    pub fn start(
        scenario: Arc<Scenario>,
        host: &str,
        load: Load,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        Self::start_with_data(scenario, host, load, config, DataSets::none())
    }

    /// Starts ramping users; `data` holds the scenario's data sets, in order.
    pub fn start_with_data(
        scenario: Arc<Scenario>,
        host: &str,
        load: Load,
        config: EngineConfig,
        data: DataSets,
    ) -> Result<Engine, EngineError> {
        check_load(&load, scenario.user_classes().len())?;
        if data.len() != scenario.data().len() {
            return Err(EngineError::InvalidLoad {
                reason: format!(
                    "the scenario has {} data sets, {} were given",
                    scenario.data().len(),
                    data.len()
                ),
            });
        }
        let target = Arc::new(
            target::Target::parse(
                host,
                config.tls_ca_pem.as_deref(),
                &config.tls,
                scenario.http(),
            )?
            .with_allow_list(config.allow_targets.clone()),
        );
        let thread_count = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let arrivals = arrival::Arrivals::new(&load, thread_count)?;
        let thread_count = arrivals.as_ref().map_or(thread_count, |a| a.threads());
        // One plan per thread: cloning its `Bytes` (URIs, bodies, header
        // values) per request then never touches a refcount another core uses.
        scenario
            .resolve_env(|name| config.env.get(name).cloned())
            .map_err(EngineError::Env)?;
        let plans = (0..thread_count)
            .map(|_| plan::Plan::new(&scenario, &config.env, &target.authority).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let endpoint_count = scenario.endpoints().len();
        let pacer = Arc::new(pacer::ConnectPacer::new(config.connection_rate));
        let (finished_tx, finished_rx) = watch::channel(0usize);
        let finished_tx = Arc::new(finished_tx);
        let mut threads = Vec::with_capacity(thread_count);
        let mut commands = Vec::with_capacity(thread_count);
        for (index, plan) in plans.into_iter().enumerate() {
            let stats = Arc::new(ThreadStats::new(endpoint_count));
            let (tx, rx) = mpsc::unbounded_channel();
            thread::spawn(
                index,
                thread::ThreadSetup {
                    stats: stats.clone(),
                    data: data.clone(),
                    plan,
                    target: target.clone(),
                    config: config.clone(),
                    pacer: pacer.clone(),
                    commands: rx,
                    finished: finished_tx.clone(),
                },
                arrivals.as_ref().map(|a| a.thread(index)),
            )?;
            threads.push(stats);
            commands.push(tx);
        }
        let spawned = Arc::new(AtomicU64::new(0));
        let (load, load_rx) = watch::channel(load);
        let spawner = match &arrivals {
            Some(arrivals) => {
                arrivals.start(&commands);
                tokio::spawn(async {})
            }
            None => tokio::spawn(ramp::spawner(load_rx, commands.clone(), spawned.clone())),
        };
        Ok(Engine {
            _scenario: scenario,
            endpoint_count,
            threads,
            commands,
            spawner,
            load,
            spawned,
            finished_threads: finished_rx,
            arrivals,
            pacer,
        })
    }

    /// Moves to a new share of the run: users are started or retired (after
    /// their current task) at `load.spawn_rate` until each class has
    /// `load.class_users`; new users get ids from `load.user_id_offset` on.
    pub fn retarget(&self, load: Load) -> Result<(), EngineError> {
        check_load(&load, self.load.borrow().class_users.len())?;
        self.load.send_replace(load);
        Ok(())
    }

    /// Users the engine is moving toward.
    pub fn target_users(&self) -> u32 {
        self.load.borrow().class_users.iter().sum()
    }

    /// A new limit of connections per second (0: none), from now on.
    pub fn set_connection_rate(&self, rate: f64) {
        self.pacer.set_rate(rate);
    }

    /// Open model: changes the rate from now on (iterations per second; 0
    /// pauses). An error in the closed model, whose load is users.
    pub fn set_rate(&self, rate: f64) -> Result<(), EngineError> {
        let Some(arrivals) = &self.arrivals else {
            return Err(EngineError::InvalidLoad {
                reason: "the rate of a closed-model run cannot change".to_owned(),
            });
        };
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(EngineError::InvalidLoad {
                reason: format!("rate must be a non-negative number, not {rate}"),
            });
        }
        arrivals.set_rate(rate, &self.commands);
        Ok(())
    }

    /// True for the open model (a rate), false for the closed one (users).
    pub fn is_open(&self) -> bool {
        self.arrivals.is_some()
    }

    /// Open model: the current rate (0 in the closed model).
    pub fn rate(&self) -> f64 {
        self.arrivals.as_ref().map_or(0.0, |a| a.rate())
    }

    /// Open model: arrivals handled so far (started + dropped).
    pub fn arrivals_due(&self) -> u64 {
        self.threads.iter().map(|t| t.arrivals()).sum()
    }

    /// Takes everything recorded since the previous cut.
    pub fn cut(&self) -> Interval {
        stats::cut(&self.threads, self.endpoint_count)
    }

    /// Users currently running.
    pub fn active_users(&self) -> u32 {
        self.threads.iter().map(|t| t.active_users()).sum()
    }

    /// Users handed to threads so far by the ramp (never decreases).
    pub fn spawned_users(&self) -> u64 {
        self.spawned.load(Ordering::Relaxed)
    }

    /// Requests sent and not yet recorded or cancelled.
    pub fn in_flight(&self) -> u64 {
        self.threads.iter().map(|t| t.in_flight()).sum()
    }

    /// Requests completed since the engine started (cumulative).
    pub fn completed(&self) -> u64 {
        self.threads.iter().map(|t| t.completed()).sum()
    }

    /// Requests completed since the start (without group and connection rows).
    pub fn requests(&self) -> u64 {
        self.threads.iter().map(|t| t.requests()).sum()
    }

    /// Stops spawning, lets users finish their current request within
    /// `grace`, then cancels what is left (counted as `cancelled`). When it
    /// returns nothing is in flight and the next `cut()` holds the remainder.
    pub async fn stop(&self, grace: Duration) {
        self.spawner.abort();
        for commands in &self.commands {
            let _ = commands.send(Command::Stop);
        }
        let all = self.threads.len();
        let mut finished = self.finished_threads.clone();
        let graceful = tokio::time::timeout(grace, finished.wait_for(|n| *n >= all))
            .await
            .is_ok();
        if !graceful {
            for commands in &self.commands {
                let _ = commands.send(Command::Abort);
            }
            // Each thread bumps the counter as it ends, even by panic.
            let _ = finished.wait_for(|n| *n >= all).await;
        }
    }
}

fn check_load(load: &Load, classes: usize) -> Result<(), EngineError> {
    if load.class_users.len() != classes {
        return Err(EngineError::InvalidLoad {
            reason: format!(
                "{} user counts for {} user classes",
                load.class_users.len(),
                classes
            ),
        });
    }
    Ok(())
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.spawner.abort();
        for commands in &self.commands {
            let _ = commands.send(Command::Abort);
        }
    }
}

#[cfg(test)]
mod tests;
