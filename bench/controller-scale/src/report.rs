//! The results: one JSON document and the printed table.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::check::SplitCheck;

#[derive(Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: serde_json::Value,
    pub config: Config,
    pub connect: Connect,
    /// Every worker connected and idle.
    pub idle: Steady,
    pub placement: Placement,
    /// Every worker running its share (a `WatchRun` stream open, as `cicada
    /// start` keeps one).
    pub running: Steady,
    pub stop: Stop,
    /// Peak resident memory of the controller over the whole benchmark.
    pub controller_peak_rss_kib: u64,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub workers: usize,
    pub cores: Vec<u32>,
    pub classes: usize,
    pub users: u32,
    pub spawn_rate: f64,
    pub steady_s: f64,
    pub hold_s: f64,
    /// CPUs the collector and controller were pinned to, if any.
    pub services_cpus: Option<String>,
    pub services_log: String,
    pub open_files_limit: u64,
}

#[derive(Debug, Serialize)]
pub struct Connect {
    /// From the first dial until every worker got `Registered`.
    pub seconds: f64,
    pub workers_listed: usize,
}

/// CPU and memory over a steady interval.
#[derive(Debug, Serialize)]
pub struct Steady {
    pub seconds: f64,
    pub heartbeats: u64,
    pub heartbeats_per_s: f64,
    pub controller_cpu_s: f64,
    pub controller_cpu_us_per_heartbeat: f64,
    /// Controller CPU in percent of one core.
    pub controller_core_percent: f64,
    pub controller_rss_kib: u64,
    pub collector_cpu_s: f64,
    /// This process: the simulated workers' side.
    pub bench_cpu_s: f64,
    /// CPU the rest of the machine used meanwhile (other work on these
    /// cores); the numbers are trustworthy when it is near zero.
    pub other_cpu_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Placement {
    pub run_id: String,
    /// `StartRun` call to its response.
    pub start_run_rpc_ms: f64,
    /// `StartRun` call until the last worker received its `StartWork`.
    pub all_start_work_ms: f64,
    pub workers_in_run: u32,
    pub workers_started: usize,
    pub split: SplitCheck,
    /// `StartRun` call until `WatchRun` reported every user active (the
    /// workers' heartbeats carry them; one interval is 1 s).
    pub all_users_active_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Stop {
    pub stop_run_rpc_ms: f64,
    /// `StopRun` call until the last worker received its `StopWork`.
    pub all_stop_work_ms: f64,
    pub workers_stopped: usize,
    /// `StopRun` call until `WatchRun`'s last message (`FinishRun` done).
    pub finished_ms: Option<f64>,
    pub final_state: String,
}

impl Results {
    /// Writes `results.json` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("results.json"), json + "\n")
            .context("failed to write results.json")
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let c = &self.config;
        let p = &self.placement;
        let s = &self.stop;
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        let steady = |name: &str, st: &Steady| {
            format!(
                "{name:<28} {:>9.0} heartbeats/s  controller {:>5.1} % of a core  {:>6.1} µs/heartbeat  RSS {:.1} MiB  (collector {:.2}, bench {:.2}, other {:.2} CPU s in {:.0} s)\n",
                st.heartbeats_per_s,
                st.controller_core_percent,
                st.controller_cpu_us_per_heartbeat,
                st.controller_rss_kib as f64 / 1024.0,
                st.collector_cpu_s,
                st.bench_cpu_s,
                st.other_cpu_s,
                st.seconds,
            )
        };
        let split = &p.split;
        let mut out = format!(
            "\ncontroller scale: {} simulated workers (cores {:?} cycled), {} user classes, {} users at {}/s; services on CPUs {}; log {}\n\n",
            c.workers,
            c.cores,
            c.classes,
            c.users,
            c.spawn_rate,
            c.services_cpus.as_deref().unwrap_or("any"),
            c.services_log,
        );
        out += &format!(
            "{:<28} {:.2} s ({} listed by ListWorkers)\n",
            "connect + register", self.connect.seconds, self.connect.workers_listed
        );
        out += &steady("idle", &self.idle);
        out += &format!("{:<28} {:.1} ms\n", "StartRun RPC", p.start_run_rpc_ms);
        out += &format!(
            "{:<28} {:.1} ms ({} of {} workers; goal < 1000 ms)\n",
            "all StartWork received", p.all_start_work_ms, p.workers_started, p.workers_in_run
        );
        out += &format!(
            "{:<28} {}: {} of {} users placed, by class {:?} (expected {:?}), {:.0}..{:.0} users per core, {} workers / {} cells off their share\n",
            "split",
            if split.ok { "exact" } else { "WRONG" },
            split.users_placed,
            split.users_requested,
            split.class_users,
            split.class_users_expected,
            split.min_users_per_core,
            split.max_users_per_core,
            split.workers_off_share,
            split.cells_off_share,
        );
        out += &format!(
            "{:<28} {}\n",
            "all users active (WatchRun)",
            ms(p.all_users_active_ms)
        );
        out += &steady("running", &self.running);
        out += &format!("{:<28} {:.1} ms\n", "StopRun RPC", s.stop_run_rpc_ms);
        out += &format!(
            "{:<28} {:.1} ms ({} workers)\n",
            "all StopWork received", s.all_stop_work_ms, s.workers_stopped
        );
        out += &format!(
            "{:<28} {} ({})\n",
            "run finished",
            ms(s.finished_ms),
            s.final_state
        );
        out += &format!(
            "{:<28} {:.1} MiB\n",
            "controller peak RSS",
            self.controller_peak_rss_kib as f64 / 1024.0
        );
        out
    }
}
