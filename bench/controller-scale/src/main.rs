//! `cicada-bench-controller-scale`: can one controller hold thousands of
//! workers and place a large run across them fast?
//!
//! Starts the real `cicada-collector` (SQLite in a temp dir) and
//! `cicada-controller` release binaries on 127.0.0.1, then N simulated
//! workers in this process, each on its own gRPC connection ([`sim`]). It
//! measures, in order ([`phases`]): the controller's CPU per heartbeat with
//! every worker idle, the time from `StartRun` until every worker holds its
//! `StartWork` (and checks the split exactly, [`check`]), the CPU per
//! heartbeat while the run is live, and the time from `StopRun` until the
//! run is finished. Prints a table and writes `results.json` ([`report`]).
//! Every wait is bounded and every process it started is stopped.
//!
//! Run it through `bench/controller-scale.sh` (builds the release binaries,
//! pins the processes); see BENCHMARKS.md.

#![allow(clippy::print_stdout)]

mod check;
mod fleet;
mod phases;
mod procs;
mod report;
mod scenario;
mod sim;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use cicada_proto::v1::controller_client::ControllerClient;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::fleet::Fleet;
use crate::phases::Bench;
use crate::procs::Launcher;
use crate::report::{Config, Results};

/// Controller scale benchmark: N simulated workers against the real
/// controller and collector.
#[derive(Debug, Parser)]
#[command(name = "cicada-bench-controller-scale")]
struct Args {
    /// Simulated workers, each with its own connection.
    #[arg(long, env = "CICADA_BENCH_WORKERS", default_value_t = 2000)]
    workers: usize,
    /// Cores each worker registers with, cycled over the workers (e.g. 1,2,4).
    #[arg(
        long,
        env = "CICADA_BENCH_CORES",
        value_delimiter = ',',
        default_value = "1"
    )]
    cores: Vec<u32>,
    /// User classes of the run's scenario (weights 3, 1, 4, 1, 5, ...).
    #[arg(long, env = "CICADA_BENCH_CLASSES", default_value_t = 2)]
    classes: usize,
    /// Users of the run.
    #[arg(long, env = "CICADA_BENCH_USERS", default_value_t = 100_000)]
    users: u32,
    /// Spawn rate of the run, users per second across all workers.
    #[arg(long, env = "CICADA_BENCH_SPAWN_RATE", default_value_t = 10_000.0)]
    spawn_rate: f64,
    /// How long to measure idle and running heartbeats.
    #[arg(long, env = "CICADA_BENCH_STEADY", default_value = "20s", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Pause after connecting, before measuring (first heartbeats, allocations).
    #[arg(long, env = "CICADA_BENCH_WARMUP", default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Controller gRPC port on 127.0.0.1.
    #[arg(long, env = "CICADA_BENCH_CONTROLLER_PORT", default_value_t = 37200)]
    controller_port: u16,
    /// Collector gRPC port on 127.0.0.1.
    #[arg(long, env = "CICADA_BENCH_COLLECTOR_PORT", default_value_t = 37201)]
    collector_port: u16,
    /// Folder with the cicada-controller and cicada-collector binaries.
    #[arg(long, env = "CICADA_BENCH_BIN_DIR", default_value = "target/release")]
    bin_dir: PathBuf,
    /// Pin the collector and controller to these CPUs (taskset -c).
    #[arg(long, env = "CICADA_BENCH_SERVICES_CPUS")]
    services_cpus: Option<String>,
    /// RUST_LOG of the services (info: as deployed).
    #[arg(long, env = "CICADA_BENCH_SERVICES_LOG", default_value = "info")]
    services_log: String,
    /// Results folder [default: bench/results/<UTC time>-controller-scale].
    #[arg(long, env = "CICADA_BENCH_OUT")]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    ensure!(
        args.workers > 0 && !args.cores.is_empty(),
        "--workers and --cores must not be empty"
    );
    ensure!(
        args.users > 0 && args.spawn_rate > 0.0,
        "--users and --spawn-rate must be positive"
    );
    // Each worker holds one socket here and one in the controller (which
    // inherits this limit); raise it with `ulimit -n` (the wrapper does).
    let open_files = procs::open_files_limit()?;
    let needed = args.workers as u64 + 256;
    ensure!(
        open_files >= needed,
        "the open files limit is {open_files}; {} workers need at least {needed}: run `ulimit -n {}` first",
        args.workers,
        needed.max(65_536)
    );
    procs::ensure_port_free(args.controller_port).await?;
    procs::ensure_port_free(args.collector_port).await?;
    let out = args.out.clone().unwrap_or_else(default_out);
    std::fs::create_dir_all(&out).with_context(|| format!("failed to create {}", out.display()))?;
    let machine = procs::machine();
    let data = tempfile::tempdir().context("failed to create a temp dir")?;
    let launcher = Launcher {
        bin_dir: args.bin_dir.clone(),
        log_dir: out.clone(),
        log_filter: args.services_log.clone(),
        cpus: args.services_cpus.clone(),
    };

    let collector_addr = format!("127.0.0.1:{}", args.collector_port);
    let controller_addr = format!("127.0.0.1:{}", args.controller_port);
    let db = data.path().join("cicada.db").display().to_string();
    let collector = launcher
        .start(
            "cicada-collector",
            &[
                "--listen".into(),
                collector_addr.clone(),
                // The history API is not measured: any free port.
                "--http-listen".into(),
                "127.0.0.1:0".into(),
                "--database-url".into(),
                db,
            ],
            args.collector_port,
        )
        .await?;
    let controller = match launcher
        .start(
            "cicada-controller",
            &[
                "--listen".into(),
                controller_addr.clone(),
                "--collector".into(),
                format!("http://{collector_addr}"),
                // The benchmark measures the gRPC side only.
                "--web-listen".into(),
                "off".into(),
            ],
            args.controller_port,
        )
        .await
    {
        Ok(controller) => controller,
        Err(error) => {
            collector.stop().await?;
            return Err(error);
        }
    };
    let controller_pid = controller.pid;
    let url = format!("http://{controller_addr}");
    // On SIGINT/SIGTERM the measurement is dropped (its workers with it) and
    // the services are still stopped below: nothing outlives the benchmark.
    let result = tokio::select! {
        result = measure(&args, &url, controller_pid, collector.pid) => result,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    // Stop the services whatever happened (the simulated workers are gone by now).
    controller.stop().await?;
    collector.stop().await?;
    let (mut results, peak) = result?;
    results.controller_peak_rss_kib = peak;
    results.machine = machine;
    results.config.open_files_limit = open_files;
    results.write(&out)?;
    let table = results.table();
    std::fs::write(out.join("table.txt"), &table)?;
    println!("{table}");
    println!("results in {}", out.display());
    ensure!(
        results.placement.split.ok,
        "the split is wrong: {:?}",
        results.placement.split
    );
    Ok(())
}

/// The phases, with the fleet stopped whatever happens; returns the results
/// and the controller's peak RSS.
async fn measure(
    args: &Args,
    url: &str,
    controller_pid: u32,
    collector_pid: u32,
) -> anyhow::Result<(Results, u64)> {
    let cores: Vec<u32> = args
        .cores
        .iter()
        .copied()
        .cycle()
        .take(args.workers)
        .collect();
    let client = ControllerClient::connect(url.to_owned())
        .await
        .context("failed to connect to the controller")?;
    let started = Instant::now();
    let mut bench = Bench {
        fleet: Fleet::start(url, cores),
        client,
        controller_pid,
        collector_pid,
        ticks: procs::clock_ticks(),
    };
    let result = phases(args, &mut bench, started).await;
    let peak = procs::rss_kib(controller_pid)
        .map(|(_, peak)| peak)
        .unwrap_or(0);
    bench.fleet.stop().await;
    Ok((result?, peak))
}

async fn phases(args: &Args, bench: &mut Bench, started: Instant) -> anyhow::Result<Results> {
    tracing::info!(workers = args.workers, "connecting the simulated workers");
    let connect = bench.connect(started).await?;
    tracing::info!(
        seconds = connect.seconds,
        "all workers registered; warming up"
    );
    bench.fleet.idle_until(Instant::now() + args.warmup).await?;
    tracing::info!(
        seconds = args.steady.as_secs_f64(),
        "measuring idle heartbeats"
    );
    let idle = bench.steady(args.steady).await?;

    tracing::info!(users = args.users, "starting the run");
    let placed_at = Instant::now();
    let (mut placement, watch) = bench
        .place(
            args.classes,
            args.users,
            args.spawn_rate,
            args.steady + args.warmup,
            placed_at,
        )
        .await?;
    bench.fleet.idle_until(Instant::now() + args.warmup).await?;
    tracing::info!("measuring running heartbeats");
    let running = bench.steady(args.steady).await?;
    tracing::info!("stopping the run");
    let workers = placement.workers_started;
    let (stop, all_active_ms) = bench
        .stop(&placement.run_id, workers, watch, placed_at)
        .await?;
    placement.all_users_active_ms = all_active_ms;

    Ok(Results {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: serde_json::Value::Null,
        config: Config {
            workers: args.workers,
            cores: args.cores.clone(),
            classes: args.classes,
            users: args.users,
            spawn_rate: args.spawn_rate,
            steady_s: args.steady.as_secs_f64(),
            hold_s: (args.steady + args.warmup).as_secs_f64(),
            services_cpus: args.services_cpus.clone(),
            services_log: args.services_log.clone(),
            open_files_limit: 0,
        },
        connect,
        idle,
        placement,
        running,
        stop,
        controller_peak_rss_kib: 0,
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// `bench/results/<UTC time>-controller-scale`, like bench/run.sh's folders.
fn default_out() -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    PathBuf::from("bench/results").join(format!("{stamp}-controller-scale"))
}
