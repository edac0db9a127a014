//! `GET /process-metrics`: the target's own CPU time in the Prometheus text
//! format, so a Prometheus server can scrape it next to a load test (the
//! Prometheus convention `/metrics` is taken by the IoT route `POST /metrics`).

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, fixed at 100
/// in the Linux user-space ABI).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of this process (all threads), from
/// `/proc/self/stat`; `None` off Linux.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, utime (14) index 11, stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The Prometheus text exposition of the process metrics.
pub(crate) fn exposition() -> String {
    let mut text = String::from(
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
         # TYPE process_cpu_seconds_total counter\n",
    );
    if let Some(seconds) = cpu_seconds() {
        text.push_str(&format!("process_cpu_seconds_total {seconds}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_grow_with_work() {
        let before = cpu_seconds().expect("linux /proc");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_seconds().unwrap() >= before);
        assert!(exposition().contains("\nprocess_cpu_seconds_total "));
    }
}
