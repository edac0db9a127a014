use super::*;

/// Samples at 1 s steps: `rps` requests and `failures_at(second)` failures
/// per second, every worker at `cpu`.
fn run(seconds: usize, rps: u64, cpu: &[f64], failures_at: impl Fn(usize) -> u64) -> Vec<Sample> {
    let mut requests = 0;
    let mut failures = 0;
    (0..=seconds)
        .map(|second| {
            if second > 0 {
                requests += rps;
                failures += failures_at(second);
            }
            Sample {
                elapsed_s: second as f64,
                target_users: 100,
                active_users: 100,
                requests,
                failures,
                dropped: 0,
                workers: cpu
                    .iter()
                    .enumerate()
                    .map(|(i, &cpu)| WorkerLoad {
                        worker_id: format!("w{i}"),
                        cpu,
                        at_bound: false,
                        cores: 1,
                        requests_per_cpu_second: 0.0,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn kinds(found: &[Diagnosis]) -> Vec<DiagnosisKind> {
    found.iter().map(|d| d.kind()).collect()
}

#[test]
fn a_healthy_run_has_nothing_to_say() {
    let samples = run(30, 1000, &[0.4, 0.5], |_| 0);
    assert!(diagnose(&samples, &[], Goals::default()).is_empty());
    assert!(diagnose(&[], &[], Goals::default()).is_empty());
}

#[test]
fn saturated_workers_are_generator_bound_with_an_estimate() {
    let samples = run(10, 12_000, &[0.97, 0.95], |_| 0);
    let found = diagnose(
        &samples,
        &[],
        Goals {
            rps: Some(48_000.0),
        },
    );
    assert_eq!(kinds(&found), [DiagnosisKind::GeneratorBound]);
    // 2 workers at 96% CPU -> 2 * 0.96 / 0.75 = 2.56; goal 4x the 12k achieved -> 10.24.
    assert_eq!(found[0].suggested_workers, 11);
    assert!(
        found[0].evidence[0].contains("worker w0 used 97%"),
        "{:?}",
        found[0].evidence
    );
    assert!(found[0].evidence.iter().any(|e| e.contains("goal 48000")));
    // Without a goal: at least one more worker.
    let found = diagnose(&samples, &[], Goals::default());
    assert_eq!(found[0].suggested_workers, 3);
}

#[test]
fn one_cpu_spike_is_not_saturation() {
    let mut samples = run(10, 1000, &[0.5], |_| 0);
    samples[9].workers[0].cpu = 0.99;
    assert!(diagnose(&samples, &[], Goals::default()).is_empty());
}

#[test]
fn failures_that_stop_mean_the_target_scaled_late() {
    // Seconds 5..=12 fail at 30%, then all is well for 10 s.
    let samples = run(22, 1000, &[0.3], |s| {
        if (5..=12).contains(&s) { 300 } else { 0 }
    });
    let found = diagnose(&samples, &[], Goals::default());
    assert_eq!(kinds(&found), [DiagnosisKind::FailingBeforeScaled]);
    assert!(
        found[0].summary.contains("between 4 s and 12 s"),
        "{}",
        found[0].summary
    );
    assert!(found[0].evidence[0].starts_with("2400 of 8000 requests failed"));
}

#[test]
fn lasting_failures_with_cool_generators_are_target_errors() {
    let samples = run(20, 1000, &[0.3, 0.2], |_| 50);
    let failures = [FailureStat {
        method: "POST".into(),
        name: "/metrics".into(),
        kind: "status 503".into(),
        count: 1000,
        last_message: "/metrics returned status 503".into(),
    }];
    let found = diagnose(&samples, &failures, Goals::default());
    assert_eq!(kinds(&found), [DiagnosisKind::TargetErrors]);
    assert!(found[0].evidence[1].contains("1000 x status 503 on POST /metrics"));
    assert!(found[0].evidence[0].contains("at most 30% CPU"));
}

#[test]
fn saturated_generators_are_not_blamed_on_the_target() {
    let samples = run(20, 1000, &[0.99], |_| 50);
    let found = diagnose(&samples, &[], Goals::default());
    assert_eq!(kinds(&found), [DiagnosisKind::GeneratorBound]);
}

#[test]
fn dropped_iterations_mean_the_bound_was_hit() {
    let mut samples = run(10, 900, &[0.5], |_| 0);
    for (second, sample) in samples.iter_mut().enumerate() {
        sample.dropped = second as u64 * 100;
    }
    let found = diagnose(&samples, &[], Goals::default());
    assert_eq!(kinds(&found), [DiagnosisKind::GeneratorBound]);
    assert!(
        found[0].evidence[0].starts_with("400 of 4000 iterations due in the last 5 s were dropped"),
        "{:?}",
        found[0].evidence
    );
    // 10% dropped at 50% CPU: one worker does, but never fewer than one more.
    assert_eq!(found[0].suggested_workers, 2);
}

#[test]
fn measured_speed_sizes_the_fleet_when_a_goal_is_known() {
    let mut samples = run(10, 12_000, &[0.97, 0.95], |_| 0);
    for sample in &mut samples {
        for worker in &mut sample.workers {
            worker.cores = 2;
            worker.requests_per_cpu_second = 8_000.0;
        }
    }
    let found = diagnose(
        &samples,
        &[],
        Goals {
            rps: Some(48_000.0),
        },
    );
    // One worker: 8,000 x 2 cores x 0.75 = 12,000/s; 48,000/s needs 4.
    assert_eq!(found[0].suggested_workers, 4);
    assert!(
        found[0].evidence.iter().any(|e| e.contains(
            "measured 8000 requests per CPU-second per worker (12000/s at 75% of its cores): 48000 requests/s needs about 4"
        )),
        "{:?}",
        found[0].evidence
    );
    // Without a goal the CPU estimate stands.
    let found = diagnose(&samples, &[], Goals::default());
    assert_eq!(found[0].suggested_workers, 3);
}
