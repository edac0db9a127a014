//! Process CPU and memory for heartbeats, read from /proc (Linux). Elsewhere
//! the numbers are reported as 0.

use std::time::Instant;

/// Clock ticks per second of /proc/self/stat times. USER_HZ is 100 on every
/// mainstream Linux architecture; reading sysconf would need libc.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU use between successive samples.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: Option<(Instant, u64)>,
}

impl CpuSampler {
    /// Percent of one core used since the previous call (0 on the first).
    pub fn sample(&mut self) -> f64 {
        let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| cpu_ticks(&stat))
        else {
            return 0.0;
        };
        let now = Instant::now();
        let percent = match self.last {
            Some((then, before)) => {
                cpu_percent(ticks.saturating_sub(before), now.duration_since(then))
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        percent
    }
}

fn cpu_percent(ticks: u64, elapsed: std::time::Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks as f64 / TICKS_PER_SECOND / seconds * 100.0
}

/// CPU time (user + system) this process has used, in seconds; `None`
/// where /proc is not readable.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    Some(cpu_ticks(&stat)? as f64 / TICKS_PER_SECOND)
}

/// Resident memory of this process in bytes (0 when unknown).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| vm_rss(&status))
        .unwrap_or(0)
}

/// utime + stime from the text of /proc/PID/stat. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its
/// closing parenthesis: state is field 3, utime 14, stime 15.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS (in kB in the file) from the text of /proc/PID/status, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "1234 (my (worker) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tcicada-worker\nVmPeak:\t  2000 kB\nVmRSS:\t    1500 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(1_536_000));
        assert_eq!(vm_rss("Name: x\n"), None);
    }

    #[test]
    fn percent_of_one_core() {
        assert_eq!(cpu_percent(50, Duration::from_secs(1)), 50.0);
        assert_eq!(cpu_percent(400, Duration::from_secs(2)), 200.0);
        assert_eq!(cpu_percent(5, Duration::ZERO), 0.0);
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 0);
            let mut sampler = CpuSampler::default();
            assert_eq!(sampler.sample(), 0.0);
            assert!(sampler.sample() >= 0.0);
        }
    }
}
