//! The real services as child processes, and what `/proc` says about them.
//!
//! The collector and controller are the release binaries, started exactly as
//! an operator would (flags only), so the measured CPU and memory are those
//! of the shipped controller, not of a test build sharing our process.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tokio::process::{Child, Command};

/// How long a service may take to accept connections after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a service may take to exit after SIGTERM (the controller drains
/// for up to 10 s) before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A started service; stopped by [`Service::stop`], killed if dropped.
pub struct Service {
    pub name: &'static str,
    pub pid: u32,
    child: Child,
}

/// How to start the services.
pub struct Launcher {
    /// Folder with `cicada-controller` and `cicada-collector`.
    pub bin_dir: PathBuf,
    /// Where each service's stdout and stderr go (`<name>.log`).
    pub log_dir: PathBuf,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
    /// Pin the services to these CPUs with `taskset -c` (none: no pinning).
    pub cpus: Option<String>,
}

impl Launcher {
    /// Starts `bin_dir/<name> args...` and waits until `port` on 127.0.0.1
    /// accepts connections.
    pub async fn start(
        &self,
        name: &'static str,
        args: &[String],
        port: u16,
    ) -> anyhow::Result<Service> {
        let binary = self.bin_dir.join(name);
        ensure!(
            binary.is_file(),
            "{} not found: build it with `cargo build --release -p {name}`",
            binary.display()
        );
        let log = File::create(self.log_dir.join(format!("{name}.log")))
            .with_context(|| format!("failed to create the log file of {name}"))?;
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .args(args)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("failed to start {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited with {status} before listening; see {}",
                    self.log_dir.join(format!("{name}.log")).display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "{name} did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Service { name, pid, child })
    }
}

impl Service {
    /// SIGTERM (a clean shutdown, like an operator's), then SIGKILL if it
    /// does not exit in time.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // `kill` the command: sending a signal ourselves would need unsafe code.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                tracing::warn!(
                    service = self.name,
                    "no exit {STOP_TIMEOUT:?} after SIGTERM; killing it"
                );
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// Fails unless nothing listens on 127.0.0.1:`port`.
pub async fn ensure_port_free(port: u16) -> anyhow::Result<()> {
    ensure!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "127.0.0.1:{port} is in use; choose other ports"
    );
    Ok(())
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`,
/// 100 on every Linux we know of).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User and system CPU seconds of process `pid` (all its threads): fields
/// 14 and 15 of `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses: cut after the last ')'.
    let rest = stat
        .rsplit_once(") ")
        .context("malformed /proc/PID/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// CPU seconds all cores spent busy since boot (all but idle and iowait,
/// the first line of `/proc/stat`).
pub fn machine_busy_seconds(ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("failed to read /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let mut busy = 0.0;
    for (index, value) in line.split_whitespace().skip(1).enumerate() {
        // Fields: user nice system idle iowait irq softirq steal (guest is
        // already counted in user).
        if index != 3 && index != 4 && index < 8 {
            busy += value.parse::<f64>()?;
        }
    }
    Ok(busy / ticks)
}

/// Current and peak resident memory of `pid` in KiB (`VmRSS`, `VmHWM`).
pub fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The soft limit on open files of this process (children inherit it).
pub fn open_files_limit() -> anyhow::Result<u64> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("failed to read /proc/self/limits")?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .context("no open files limit")?;
    let soft = line.split_whitespace().nth(3).context("malformed limits")?;
    Ok(if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse()?
    })
}

/// A line describing the machine, for the results.
pub fn machine() -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        // Not available_parallelism(): that is this process's affinity (pinned).
        "cores": cpuinfo.lines().filter(|line| line.starts_with("processor")).count(),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_before": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}
