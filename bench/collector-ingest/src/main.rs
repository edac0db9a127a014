//! `cicada-bench-collector-ingest`: how large a fleet can one collector
//! take, and how do several collectors sharing one run scale?
//!
//! For each fleet size it starts `--collectors` real `cicada-collector`
//! release binaries on one fresh Postgres database (each simulated worker
//! connects to one of them, round robin, as a Kubernetes Service spreads
//! connections over a Deployment's pods), announces a run with `--endpoints`
//! endpoints, and runs that many simulated workers in this process, each
//! on its own gRPC connection, pushing a real delta (counts and an encoded
//! HdrHistogram per endpoint, [`sim`]) every `--interval` the way a worker's
//! pump does: one push in flight, the deltas cut meanwhile batched into the
//! next. It measures the deltas the collector committed per second and per
//! CPU-second of the collector (and of Postgres), and the commit lag of
//! every delta (from its cut to its acknowledgement: the collector
//! acknowledges only after the commit). Checks that the stored run holds
//! exactly the requests sent. Prints a table and writes `results.json`.
//!
//! Run it through `bench/collector-ingest.sh`; see BENCHMARKS.md.

#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../controller-scale/src/procs.rs"]
#[allow(dead_code)]
mod procs;
mod sim;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::procs::Launcher;

/// Collector ingest benchmark.
#[derive(Debug, Parser)]
#[command(name = "cicada-bench-collector-ingest")]
struct Args {
    /// Fleet sizes to measure, in order (simulated workers).
    #[arg(
        long,
        env = "CICADA_BENCH_FLEETS",
        value_delimiter = ',',
        default_value = "250,500,1000,2000"
    )]
    fleets: Vec<usize>,
    /// Endpoints per delta (each with its own histogram).
    #[arg(long, env = "CICADA_BENCH_ENDPOINTS", default_value_t = 10)]
    endpoints: u32,
    /// How often each worker cuts a delta (the workers' --delta-interval).
    #[arg(long, env = "CICADA_BENCH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Requests each endpoint records per delta (their latencies go into
    /// the histogram).
    #[arg(long, env = "CICADA_BENCH_REQUESTS", default_value_t = 100)]
    requests: u64,
    /// How long each fleet pushes (measured after the warm-up).
    #[arg(long, env = "CICADA_BENCH_DURATION", default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Pushing before the measurement starts (connections, first commits).
    #[arg(long, env = "CICADA_BENCH_WARMUP", default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Lag (p99) a collector must stay within to keep up with a fleet.
    #[arg(long, env = "CICADA_BENCH_MAX_LAG", default_value = "2s", value_parser = humantime::parse_duration)]
    max_lag: Duration,
    /// Collector gRPC port on 127.0.0.1 (the next ones for more collectors).
    #[arg(long, env = "CICADA_BENCH_COLLECTOR_PORT", default_value_t = 27101)]
    collector_port: u16,
    /// Collectors sharing the run (one database); workers spread over them.
    #[arg(long, env = "CICADA_BENCH_COLLECTORS", default_value_t = 1)]
    collectors: u16,
    /// Folder with the cicada-collector binary.
    #[arg(long, env = "CICADA_BENCH_BIN_DIR", default_value = "target/release")]
    bin_dir: PathBuf,
    /// Pin the collector to these CPUs (taskset -c).
    #[arg(long, env = "CICADA_BENCH_SERVICES_CPUS")]
    services_cpus: Option<String>,
    /// RUST_LOG of the collector.
    #[arg(long, env = "CICADA_BENCH_SERVICES_LOG", default_value = "warn")]
    services_log: String,
    /// Where results.json and the collector's log go.
    #[arg(
        long,
        env = "CICADA_BENCH_OUT",
        default_value = "bench/results/collector-ingest"
    )]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    ensure!(!args.fleets.is_empty(), "--fleets is empty");
    ensure!(
        (1..=16).contains(&args.collectors),
        "--collectors must be between 1 and 16, got {}",
        args.collectors
    );
    ensure!(args.endpoints >= 1, "--endpoints must be at least 1");
    ensure!(
        args.interval >= Duration::from_millis(50),
        "--interval must be at least 50ms"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed to create {}", args.out.display()))?;
    let ticks = procs::clock_ticks();
    let mut results = Vec::new();
    for &fleet in &args.fleets {
        let ports: Vec<u16> = (0..args.collectors)
            .map(|i| args.collector_port + i)
            .collect();
        for port in &ports {
            procs::ensure_port_free(*port).await?;
        }
        let database = cicada_store::testing::TestDatabase::postgres()
            .await
            .context("failed to create a Postgres database (is DATABASE_URL's server up?)")?;
        let launcher = Launcher {
            bin_dir: args.bin_dir.clone(),
            log_dir: args.out.clone(),
            log_filter: args.services_log.clone(),
            cpus: args.services_cpus.clone(),
        };
        let mut collectors = Vec::new();
        for port in &ports {
            let addr = format!("127.0.0.1:{port}");
            collectors.push(
                launcher
                    .start(
                        "cicada-collector",
                        &[
                            "--listen".into(),
                            addr,
                            "--http-listen".into(),
                            "127.0.0.1:0".into(),
                            "--database-url".into(),
                            database.url().to_owned(),
                        ],
                        *port,
                    )
                    .await?,
            );
        }
        eprintln!(
            "fleet of {fleet}: pushing for {:?} after a {:?} warm-up",
            args.duration, args.warmup
        );
        let config = sim::Config {
            urls: ports
                .iter()
                .map(|port| format!("http://127.0.0.1:{port}"))
                .collect(),
            workers: fleet,
            endpoints: args.endpoints,
            interval: args.interval,
            requests: args.requests,
            warmup: args.warmup,
            duration: args.duration,
        };
        let pids: Vec<u32> = collectors.iter().map(|c| c.pid).collect();
        let outcome = sim::run(&config, &pids, ticks).await;
        let stored = match &outcome {
            Ok(measured) => sim::stored_requests(database.url(), &measured.run_id).await,
            Err(_) => Ok(0),
        };
        for collector in collectors {
            collector.stop().await?;
        }
        let measured = outcome?;
        let stored = stored?;
        ensure!(
            stored == measured.requests_acked,
            "fleet of {fleet}: the collector acknowledged deltas holding {} requests but stored {stored}",
            measured.requests_acked
        );
        let row = measured.report(fleet, &args, stored);
        println!("{}", serde_json::to_string(&row)?);
        results.push(row);
    }
    let kept_up = results
        .iter()
        .filter(|r| {
            r["lag_p99_ms"].as_f64().unwrap_or(f64::MAX) <= args.max_lag.as_secs_f64() * 1000.0
        })
        .filter_map(|r| r["workers"].as_u64())
        .max();
    let document = serde_json::json!({
        "machine": procs::machine(),
        "endpoints": args.endpoints,
        "collectors": args.collectors,
        "interval_ms": args.interval.as_millis() as u64,
        "requests_per_endpoint_delta": args.requests,
        "max_lag_ms": args.max_lag.as_millis() as u64,
        "largest_fleet_within_max_lag": kept_up,
        "results": results,
    });
    let path = args.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&document)?)
        .with_context(|| format!("failed to write {}", path.display()))?;
    print_table(&document);
    eprintln!("results in {}", path.display());
    Ok(())
}

fn print_table(document: &serde_json::Value) {
    println!(
        "\n{:>8} {:>11} {:>13} {:>15} {:>12} {:>10} {:>10} {:>10} {:>9}",
        "workers",
        "deltas/s",
        "collector CPU",
        "deltas/CPU-s",
        "Postgres CPU",
        "lag p50",
        "lag p99",
        "lag max",
        "stored"
    );
    for r in document["results"].as_array().into_iter().flatten() {
        println!(
            "{:>8} {:>11.0} {:>13.2} {:>15.0} {:>12.2} {:>8.0}ms {:>8.0}ms {:>8.0}ms {:>9}",
            r["workers"].as_u64().unwrap_or(0),
            r["deltas_per_s"].as_f64().unwrap_or(0.0),
            r["collector_cores"].as_f64().unwrap_or(0.0),
            r["deltas_per_collector_cpu_s"].as_f64().unwrap_or(0.0),
            r["postgres_cores"].as_f64().unwrap_or(0.0),
            r["lag_p50_ms"].as_f64().unwrap_or(0.0),
            r["lag_p99_ms"].as_f64().unwrap_or(0.0),
            r["lag_max_ms"].as_f64().unwrap_or(0.0),
            if r["stored_exact"].as_bool() == Some(true) {
                "exact"
            } else {
                "-"
            },
        );
    }
    println!(
        "\nlargest fleet within {} ms of lag (p99) with {} collector(s): {}",
        document["max_lag_ms"], document["collectors"], document["largest_fleet_within_max_lag"]
    );
}
