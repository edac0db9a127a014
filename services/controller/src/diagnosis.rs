//! What limits a run: the reference case's three situations, decided from
//! per-second samples of the run (a pure function).
//!
//! 1. Generator-bound: some worker's CPU stays above 90% of its cores (or
//!    its in-flight bound is hit), so the numbers measure the generator's
//!    queue, not the target: add workers (with an estimate of how many:
//!    from the workers' measured requests per CPU-second when a goal is
//!    known, else by scaling their CPU and the achieved rate).
//! 2. Failing before the target scaled: failures concentrated in a period,
//!    then recovery: the target's autoscaler reacted late.
//! 3. Target errors with healthy generators: an application problem; the
//!    failure kinds and the endpoints they hit say where to look.

use cicada_proto::v1::{Diagnosis, DiagnosisKind, FailureStat};

/// CPU share of its cores above which a worker counts as saturated.
const SATURATED_CPU: f64 = 0.9;
/// CPU share the worker estimate aims at, leaving headroom.
const COMFORTABLE_CPU: f64 = 0.75;
/// Recent samples looked at for saturation.
const RECENT: usize = 5;
/// A second with at least this failure rate is a failing second.
const FAILING_SECOND: f64 = 0.05;
/// Recovered: the last `RECOVERED_SECONDS` seconds stay below this rate.
const RECOVERED_RATE: f64 = 0.01;
const RECOVERED_SECONDS: usize = 5;
/// A run whose failure rate reaches this has target errors worth reporting.
const ERROR_RATE: f64 = 0.01;

/// One worker at one second.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLoad {
    pub worker_id: String,
    /// CPU used, as a share of the worker's cores (1.0 = all of them).
    pub cpu: f64,
    /// The worker had as many requests in flight as it may (open model).
    pub at_bound: bool,
    /// Its cores, and its measured requests per CPU-second (0: unknown).
    pub cores: u32,
    pub requests_per_cpu_second: f64,
}

/// The run at one second.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub elapsed_s: f64,
    pub target_users: u32,
    pub active_users: u32,
    /// Totals so far (cumulative).
    pub requests: u64,
    pub failures: u64,
    /// Open model: iterations dropped so far (cumulative).
    pub dropped: u64,
    pub workers: Vec<WorkerLoad>,
}

/// What the run aims at, when known.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Goals {
    /// Requests per second the run should reach.
    pub rps: Option<f64>,
}

/// Every situation that applies, most important first.
pub fn diagnose(samples: &[Sample], failures: &[FailureStat], goals: Goals) -> Vec<Diagnosis> {
    let mut found = Vec::new();
    let generator = generator_bound(samples, goals);
    let saturated = generator.is_some();
    found.extend(generator);
    match failing_before_scaled(samples) {
        Some(diagnosis) => found.push(diagnosis),
        None if !saturated => found.extend(target_errors(samples, failures)),
        None => {}
    }
    found
}

fn generator_bound(samples: &[Sample], goals: Goals) -> Option<Diagnosis> {
    if samples.len() < 3 {
        return None;
    }
    let recent = &samples[samples.len().saturating_sub(RECENT)..];
    let last = recent.last()?;
    let mut evidence = Vec::new();
    let mut cpu_sum = 0.0;
    let mut saturated = 0usize;
    for worker in &last.workers {
        let loads: Vec<&WorkerLoad> = recent
            .iter()
            .filter_map(|s| s.workers.iter().find(|w| w.worker_id == worker.worker_id))
            .collect();
        let mean = loads.iter().map(|w| w.cpu).sum::<f64>() / loads.len() as f64;
        cpu_sum += mean;
        let hot = loads.iter().filter(|w| w.cpu > SATURATED_CPU).count();
        let bound = loads.iter().filter(|w| w.at_bound).count();
        // Most of the recent seconds, not one spike.
        if hot * 5 >= loads.len() * 3 {
            saturated += 1;
            evidence.push(format!(
                "worker {} used {:.0}% of its CPU over the last {} s",
                worker.worker_id,
                mean * 100.0,
                loads.len()
            ));
        } else if bound * 5 >= loads.len() * 3 {
            saturated += 1;
            evidence.push(format!(
                "worker {} hit its in-flight bound in {bound} of the last {} s",
                worker.worker_id,
                loads.len()
            ));
        }
    }
    // Open model: iterations dropped lately mean the in-flight bound was hit.
    let first = recent.first()?;
    let dropped = last.dropped.saturating_sub(first.dropped);
    let due = last.requests.saturating_sub(first.requests) + dropped;
    if dropped > 0 {
        evidence.push(format!(
            "{dropped} of {due} iterations due in the last {} s were dropped: the in-flight bound was reached (raise --max-in-flight, or add workers)",
            recent.len()
        ));
    }
    if saturated == 0 && dropped == 0 {
        return None;
    }
    let workers = last.workers.len().max(1);
    let mean_cpu = cpu_sum / workers as f64;
    let achieved = rate(recent);
    evidence.push(format!(
        "{achieved:.0} requests/s with {workers} workers (mean CPU {:.0}%)",
        mean_cpu * 100.0
    ));
    if last.active_users < last.target_users {
        evidence.push(format!(
            "{} of {} users running",
            last.active_users, last.target_users
        ));
    }
    let mut scale = (mean_cpu / COMFORTABLE_CPU).max(1.0);
    if dropped > 0 && due > dropped {
        scale *= due as f64 / (due - dropped) as f64;
    }
    if let Some(goal) = goals.rps.filter(|goal| *goal > 0.0) {
        evidence.push(format!("goal {goal:.0} requests/s"));
        if achieved > 0.0 {
            scale *= (goal / achieved).max(1.0);
        }
    }
    let mut suggested = ((workers as f64 * scale).ceil() as usize).max(workers + 1);
    // With a goal and every worker's measured speed, size from the speed:
    // what one worker makes at a comfortable CPU share of its cores.
    let measured = last.workers.iter().all(|w| w.requests_per_cpu_second > 0.0);
    if let Some(goal) = goals.rps.filter(|goal| *goal > 0.0)
        && !last.workers.is_empty()
        && measured
    {
        let count = last.workers.len() as f64;
        let speed = last
            .workers
            .iter()
            .map(|w| w.requests_per_cpu_second)
            .sum::<f64>()
            / count;
        let per_worker = last
            .workers
            .iter()
            .map(|w| w.requests_per_cpu_second * f64::from(w.cores.max(1)) * COMFORTABLE_CPU)
            .sum::<f64>()
            / count;
        let needed = (goal / per_worker).ceil() as usize;
        evidence.push(format!(
            "measured {speed:.0} requests per CPU-second per worker ({per_worker:.0}/s at {:.0}% of its cores): {goal:.0} requests/s needs about {needed}",
            COMFORTABLE_CPU * 100.0
        ));
        suggested = needed.max(workers + 1);
    }
    Some(Diagnosis {
        kind: DiagnosisKind::GeneratorBound as i32,
        summary: format!(
            "generator-bound: the load generators limit the run ({saturated} of {workers} workers saturated), so latency and throughput measure the generators; add workers (about {suggested} in all)"
        ),
        evidence,
        suggested_workers: suggested as u32,
    })
}

/// Requests per second over `samples` (cumulative counts).
fn rate(samples: &[Sample]) -> f64 {
    match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if last.elapsed_s > first.elapsed_s => {
            (last.requests - first.requests) as f64 / (last.elapsed_s - first.elapsed_s)
        }
        _ => 0.0,
    }
}

/// Per-second (requests, failures) from cumulative samples.
fn per_second(samples: &[Sample]) -> Vec<(f64, u64, u64)> {
    samples
        .windows(2)
        .map(|pair| {
            (
                pair[1].elapsed_s,
                pair[1].requests.saturating_sub(pair[0].requests),
                pair[1].failures.saturating_sub(pair[0].failures),
            )
        })
        .collect()
}

fn failure_rate(requests: u64, failures: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        failures as f64 / requests as f64
    }
}

fn failing_before_scaled(samples: &[Sample]) -> Option<Diagnosis> {
    let seconds = per_second(samples);
    if seconds.len() < RECOVERED_SECONDS + 2 {
        return None;
    }
    let failing: Vec<usize> = (0..seconds.len())
        .filter(|&i| {
            let (_, requests, failures) = seconds[i];
            failures > 0 && failure_rate(requests, failures) >= FAILING_SECOND
        })
        .collect();
    let (&first, &last) = (failing.first()?, failing.last()?);
    let tail = &seconds[last + 1..];
    if tail.len() < RECOVERED_SECONDS {
        return None;
    }
    let (tail_requests, tail_failures) =
        tail.iter().fold((0, 0), |(r, f), (_, requests, failures)| {
            (r + requests, f + failures)
        });
    if tail_requests == 0 || failure_rate(tail_requests, tail_failures) >= RECOVERED_RATE {
        return None;
    }
    let window = &seconds[first..=last];
    let (requests, failures) = window
        .iter()
        .fold((0, 0), |(r, f), (_, requests, failures)| {
            (r + requests, f + failures)
        });
    let from = window[0].0 - 1.0;
    let to = window[window.len() - 1].0;
    Some(Diagnosis {
        kind: DiagnosisKind::FailingBeforeScaled as i32,
        summary: format!(
            "failing before the target scaled: failures concentrated between {from:.0} s and {to:.0} s, then recovered; let the target scale earlier (lower its autoscaler's CPU target, or pre-scale it)"
        ),
        evidence: vec![
            format!(
                "{failures} of {requests} requests failed between {from:.0} s and {to:.0} s ({:.1}%)",
                failure_rate(requests, failures) * 100.0
            ),
            format!(
                "{:.2}% failed over the last {} s",
                failure_rate(tail_requests, tail_failures) * 100.0,
                tail.len()
            ),
        ],
        suggested_workers: 0,
    })
}

fn target_errors(samples: &[Sample], failures: &[FailureStat]) -> Option<Diagnosis> {
    let last = samples.last()?;
    let rate = failure_rate(last.requests, last.failures);
    if last.failures < 10 || rate < ERROR_RATE {
        return None;
    }
    let max_cpu = samples
        .iter()
        .flat_map(|s| s.workers.iter().map(|w| w.cpu))
        .fold(0.0, f64::max);
    let mut kinds: Vec<&FailureStat> = failures.iter().collect();
    kinds.sort_by_key(|f| std::cmp::Reverse(f.count));
    let mut evidence = vec![format!(
        "{} of {} requests failed ({:.1}%); generators at most {:.0}% CPU",
        last.failures,
        last.requests,
        rate * 100.0,
        max_cpu * 100.0
    )];
    evidence.extend(kinds.iter().take(5).map(|f| {
        format!(
            "{} x {} on {} {}: {}",
            f.count, f.kind, f.method, f.name, f.last_message
        )
    }));
    Some(Diagnosis {
        kind: DiagnosisKind::TargetErrors as i32,
        summary: "target errors with healthy generators: an application problem; read the target's logs for these endpoints (then profile it)".to_owned(),
        evidence,
        suggested_workers: 0,
    })
}

#[cfg(test)]
mod tests;
