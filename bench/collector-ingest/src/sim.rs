//! The simulated fleet: each worker on its own gRPC connection pushes a
//! delta every interval like the worker's pump (one push in flight; deltas
//! cut meanwhile go out together in the next), and times each delta from
//! its cut to the collector's acknowledgement, which follows the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cicada_histogram::LatencyHistogram;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_proto::v1::{CreateRunRequest, Endpoint, EndpointDelta, PushDeltasRequest, WorkerDelta};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::procs;

/// One fleet's run.
pub struct Config {
    /// The collectors' URLs; worker `i` pushes to `urls[i % len]`.
    pub urls: Vec<String>,
    pub workers: usize,
    pub endpoints: u32,
    pub interval: Duration,
    pub requests: u64,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one fleet measured.
pub struct Measured {
    pub run_id: String,
    /// Deltas acknowledged inside the measured window.
    deltas_in_window: u64,
    /// Requests in every acknowledged delta (warm-up and drain included).
    pub requests_acked: u64,
    window: Duration,
    collectors: usize,
    /// CPU of every collector together.
    collector_cpu_s: f64,
    postgres_cpu_s: f64,
    /// Cut-to-acknowledgement of the deltas acknowledged in the window.
    lag: LatencyHistogram,
    push_errors: u64,
    deltas_sent: u64,
}

impl Measured {
    /// The fleet's row; `stored`: the requests the stored run holds.
    pub fn report(&self, workers: usize, args: &crate::Args, stored: u64) -> serde_json::Value {
        let seconds = self.window.as_secs_f64();
        let ms = |us: u64| us as f64 / 1000.0;
        serde_json::json!({
            "workers": workers,
            "collectors": self.collectors,
            "interval_ms": args.interval.as_millis() as u64,
            "endpoints": args.endpoints,
            "window_s": seconds,
            "deltas_per_s": self.deltas_in_window as f64 / seconds,
            "collector_cores": self.collector_cpu_s / seconds,
            "deltas_per_collector_cpu_s": if self.collector_cpu_s > 0.0 { self.deltas_in_window as f64 / self.collector_cpu_s } else { 0.0 },
            "postgres_cores": self.postgres_cpu_s / seconds,
            "lag_p50_ms": ms(self.lag.value_at_quantile_us(0.5)),
            "lag_p99_ms": ms(self.lag.value_at_quantile_us(0.99)),
            "lag_max_ms": ms(self.lag.max_us()),
            "deltas_sent": self.deltas_sent,
            "push_errors": self.push_errors,
            "requests_acked": self.requests_acked,
            "requests_stored": stored,
            "stored_exact": stored == self.requests_acked,
        })
    }
}

/// Shared by the fleet's tasks.
struct Tally {
    deltas_in_window: AtomicU64,
    requests_acked: AtomicU64,
    push_errors: AtomicU64,
    deltas_sent: AtomicU64,
    lag: Mutex<LatencyHistogram>,
}

pub async fn run(config: &Config, collector_pids: &[u32], ticks: f64) -> anyhow::Result<Measured> {
    let channel = Channel::from_shared(config.urls[0].clone())?
        .connect()
        .await
        .context("failed to connect to the collector")?;
    let run_id = format!(
        "ingest-{}-{}",
        config.workers,
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()
    );
    CollectorClient::new(channel)
        .create_run(CreateRunRequest {
            run_id: run_id.clone(),
            scenario_name: "collector-ingest".into(),
            scenario_yaml: "# simulated by cicada-bench-collector-ingest\n".into(),
            host: "http://127.0.0.1:1".into(),
            config_json: "{}".into(),
            started_at_ms: now_ms(),
            endpoints: (0..config.endpoints)
                .map(|index| Endpoint {
                    index,
                    method: "POST".into(),
                    name: format!("/ingest/{index}"),
                })
                .collect(),
            ..CreateRunRequest::default()
        })
        .await
        .context("CreateRun failed")?;
    // A few encoded histograms to pick from: encoding is the worker's
    // cost, not the collector's.
    let mut rng = rand::rng();
    let histograms: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..16)
            .map(|_| {
                let mut h = LatencyHistogram::new();
                for _ in 0..config.requests {
                    h.record_us(rng.random_range(500..50_000));
                }
                h.encode().expect("an in-memory histogram encodes")
            })
            .collect(),
    );
    let tally = Arc::new(Tally {
        deltas_in_window: AtomicU64::new(0),
        requests_acked: AtomicU64::new(0),
        push_errors: AtomicU64::new(0),
        deltas_sent: AtomicU64::new(0),
        lag: Mutex::new(LatencyHistogram::new()),
    });
    let start = Instant::now();
    let window = (
        start + config.warmup,
        start + config.warmup + config.duration,
    );
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..config.workers {
        let worker = Worker {
            url: config.urls[index % config.urls.len()].clone(),
            run_id: run_id.clone(),
            source: format!("sim-{index}.1"),
            endpoints: config.endpoints,
            requests: config.requests,
            interval: config.interval,
            // Spread over the interval, as real workers' cuts are.
            first_cut: start
                + config
                    .interval
                    .mul_f64(index as f64 / config.workers as f64),
            window,
            histograms: histograms.clone(),
            tally: tally.clone(),
        };
        tasks.spawn(worker.run());
    }
    tokio::time::sleep_until(window.0).await;
    let cpu_before = collectors_cpu_seconds(collector_pids, ticks)?;
    let pg_before = postgres_cpu_seconds(ticks);
    tokio::time::sleep_until(window.1).await;
    let collector_cpu_s = collectors_cpu_seconds(collector_pids, ticks)? - cpu_before;
    let postgres_cpu_s = postgres_cpu_seconds(ticks) - pg_before;
    while let Some(done) = tasks.join_next().await {
        done.context("a simulated worker panicked")??;
    }
    let lag = tally.lag.lock().await.clone();
    Ok(Measured {
        run_id,
        deltas_in_window: tally.deltas_in_window.load(Ordering::Relaxed),
        requests_acked: tally.requests_acked.load(Ordering::Relaxed),
        window: config.duration,
        collectors: collector_pids.len(),
        collector_cpu_s,
        postgres_cpu_s,
        lag,
        push_errors: tally.push_errors.load(Ordering::Relaxed),
        deltas_sent: tally.deltas_sent.load(Ordering::Relaxed),
    })
}

struct Worker {
    url: String,
    run_id: String,
    source: String,
    endpoints: u32,
    requests: u64,
    interval: Duration,
    first_cut: Instant,
    window: (Instant, Instant),
    histograms: Arc<Vec<Vec<u8>>>,
    tally: Arc<Tally>,
}

/// How long the fleet may take to deliver what it cut before the end.
const DRAIN: Duration = Duration::from_secs(60);

impl Worker {
    async fn run(self) -> anyhow::Result<()> {
        let channel = Channel::from_shared(self.url.clone())?
            .connect()
            .await
            .context("failed to connect to the collector")?;
        let mut client = CollectorClient::new(channel);
        let mut pending: Vec<(WorkerDelta, Instant)> = Vec::new();
        let mut next_cut = self.first_cut;
        let mut seq = 0u64;
        let mut lag = LatencyHistogram::new();
        let end = self.window.1;
        loop {
            let now = Instant::now();
            while next_cut <= now && next_cut < end {
                seq += 1;
                pending.push((self.delta(seq, next_cut), next_cut));
                next_cut += self.interval;
            }
            if pending.is_empty() {
                if next_cut >= end {
                    break;
                }
                tokio::time::sleep_until(next_cut).await;
                continue;
            }
            if now > end + DRAIN {
                anyhow::bail!(
                    "{}: {} deltas still unacknowledged {DRAIN:?} after the end",
                    self.source,
                    pending.len()
                );
            }
            let batch: Vec<WorkerDelta> = pending.iter().map(|(d, _)| d.clone()).collect();
            self.tally
                .deltas_sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let pushed = tokio::time::timeout(
                Duration::from_secs(30),
                client.push_deltas(PushDeltasRequest { deltas: batch }),
            )
            .await;
            match pushed {
                Ok(Ok(_)) => {
                    let acked = Instant::now();
                    let in_window = acked >= self.window.0 && acked <= self.window.1;
                    for (delta, cut) in pending.drain(..) {
                        let requests: u64 = delta.endpoints.iter().map(|e| e.requests).sum();
                        self.tally
                            .requests_acked
                            .fetch_add(requests, Ordering::Relaxed);
                        if in_window {
                            self.tally.deltas_in_window.fetch_add(1, Ordering::Relaxed);
                            lag.record_us((acked - cut).as_micros() as u64);
                        }
                    }
                }
                _ => {
                    // Kept and re-sent, as the pump does (exactly once by seq).
                    self.tally.push_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.tally
            .lag
            .lock()
            .await
            .merge(&lag)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn delta(&self, seq: u64, cut: Instant) -> WorkerDelta {
        let cut_at_ms = now_ms() - (Instant::now() - cut).as_millis() as i64;
        let second = (cut_at_ms - self.interval.as_millis() as i64).div_euclid(1000);
        let pick = seq as usize;
        WorkerDelta {
            run_id: self.run_id.clone(),
            worker_id: self.source.clone(),
            seq,
            second,
            active_users: 10,
            cut_at_ms,
            interval_us: self.interval.as_micros() as u64,
            endpoints: (0..self.endpoints)
                .map(|endpoint| EndpointDelta {
                    endpoint,
                    requests: self.requests,
                    bytes: self.requests * 64,
                    histogram: self.histograms[(pick + endpoint as usize) % self.histograms.len()]
                        .clone(),
                    ..EndpointDelta::default()
                })
                .collect(),
            ..WorkerDelta::default()
        }
    }
}

/// Requests in the run's stored per-second rows.
pub async fn stored_requests(database_url: &str, run_id: &str) -> anyhow::Result<u64> {
    let store = cicada_store::connect(database_url).await?;
    Ok(store
        .seconds(run_id, None)
        .await?
        .iter()
        .map(|row| row.counts.requests)
        .sum())
}

/// CPU seconds of the collectors together.
fn collectors_cpu_seconds(pids: &[u32], ticks: f64) -> anyhow::Result<f64> {
    pids.iter().map(|pid| procs::cpu_seconds(*pid, ticks)).sum()
}

/// CPU seconds of every `postgres` process on the machine.
fn postgres_cpu_seconds(ticks: f64) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| procs::cpu_seconds(pid, ticks).ok())
        .sum()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
