//! The open model against the real test server: rate, drops and the
//! coordinated-omission correction.

use std::io::{Read, Write};

use super::*;

fn open_load(rate: f64, max_in_flight: u32) -> Load {
    Load {
        class_users: vec![max_in_flight],
        rate,
        max_in_flight,
        ..Load::default()
    }
}

/// What a timed open-model run recorded, with bounds on how long the
/// schedule ran: at least `min` (from after start to the stop call), at most
/// `max` (from before start to after stop).
struct OpenRun {
    total: Interval,
    /// The requests' counts (without connection rows).
    requests: Counts,
    min: Duration,
    max: Duration,
    due: u64,
}

/// Starts the engine, runs it for `duration` (cutting every 50 ms) while
/// `during` checks the live gauges, stops it and returns everything.
async fn run_open(
    server: &TestServer,
    yaml: &str,
    load: Load,
    threads: usize,
    duration: Duration,
    mut during: impl FnMut(&Engine, Duration),
) -> OpenRun {
    let before = Instant::now();
    let s = scenario(yaml);
    let engine = Engine::start(s.clone(), &server.url(), load, config(threads)).unwrap();
    let started = Instant::now();
    let mut total = Interval::default();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
        during(&engine, started.elapsed());
        merge(&mut total, engine.cut());
    }
    let min = started.elapsed();
    engine.stop(Duration::from_secs(5)).await;
    let max = before.elapsed();
    assert_eq!(engine.in_flight(), 0);
    assert_eq!(engine.active_users(), 0);
    merge(&mut total, engine.cut());
    for (i, e) in total.endpoints.iter().enumerate() {
        assert_eq!(
            e.histogram.len(),
            e.counts.requests,
            "every request is timed"
        );
        if !is_request(&s, i) {
            // A connection row: times of connects, not from an intended start.
            assert!(e.uncorrected.is_empty());
            continue;
        }
        assert_eq!(
            e.uncorrected.len(),
            e.counts.requests,
            "and uncorrected too"
        );
        // Timed from the intended start is never shorter than from the send.
        for q in [0.5, 0.9, 0.99, 1.0] {
            assert!(e.histogram.value_at_quantile_us(q) >= e.uncorrected.value_at_quantile_us(q));
        }
    }
    OpenRun {
        requests: request_total(&total, &s),
        total,
        min,
        max,
        due: engine.arrivals_due(),
    }
}

/// The arrivals a schedule at `rate` has due within the run's bounds, with
/// `slack` for the timer and a busy machine at the end.
fn assert_due_within(run: &OpenRun, rate: f64, slack: Duration) {
    let low = (rate * run.min.saturating_sub(slack).as_secs_f64()).floor() as u64;
    let high = (rate * run.max.as_secs_f64()).floor() as u64 + 1;
    assert!(
        (low..=high).contains(&run.due),
        "{} arrivals due, expected {low}..={high}",
        run.due
    );
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::test]
async fn open_model_starts_every_iteration_at_the_rate() {
    let server = TestServer::start();
    let run = run_open(
        &server,
        "name: open\nusers:\n  - tasks: [{request: {path: /ok}}]\n",
        open_load(200.0, 50),
        2,
        Duration::from_secs(2),
        |_, _| {},
    )
    .await;
    assert_due_within(&run, 200.0, Duration::from_millis(500));
    assert!(run.due >= 350, "{} arrivals in 2 s at 200/s", run.due);
    let counts = run.requests;
    // Capacity suffices: every due iteration started, every one is recorded.
    assert_eq!(run.total.dropped, 0);
    assert_eq!(counts.requests + counts.cancelled, server.served());
    assert_eq!(server.served(), run.due);
    assert_eq!(counts.failures, 0);
}

#[tokio::test]
async fn iterations_beyond_the_in_flight_bound_are_dropped_and_counted() {
    let server = TestServer::start();
    let mut busiest = 0;
    let run = run_open(
        &server,
        "name: slow\nusers:\n  - tasks: [{request: {path: /slow/100}}]\n",
        open_load(100.0, 2),
        2,
        Duration::from_secs(2),
        |engine, _| {
            busiest = busiest.max(engine.in_flight());
            assert!(engine.active_users() <= 2);
        },
    )
    .await;
    assert!(
        busiest <= 2,
        "{busiest} requests in flight with a bound of 2"
    );
    assert_due_within(&run, 100.0, Duration::from_millis(500));
    let counts = run.requests;
    let started = server.served();
    assert_eq!(counts.requests + counts.cancelled, started);
    // Every due iteration either started or was dropped: none queued or lost.
    assert_eq!(started + run.total.dropped, run.due);
    // Two users doing ~10 iterations/s each cannot keep up with 100/s.
    assert!(
        run.total.dropped > run.due / 2,
        "{} of {} dropped",
        run.total.dropped,
        run.due
    );
    assert!(started >= 10, "only {started} started");
}

#[tokio::test]
async fn a_target_stall_shows_in_both_latencies_when_requests_go_out_on_time() {
    let server = TestServer::start();
    let addr = server.addr;
    let mut triggered = false;
    let run = run_open(
        &server,
        "name: fast\nusers:\n  - tasks: [{request: {path: /ok}}]\n",
        open_load(100.0, 200),
        1,
        Duration::from_millis(2000),
        |_, elapsed| {
            if !triggered && elapsed >= Duration::from_millis(500) {
                triggered = true;
                // The target stops answering anything for 400 ms, once.
                std::thread::spawn(move || {
                    let mut stream = std::net::TcpStream::connect(addr).unwrap();
                    stream
                        .write_all(
                            b"GET /stall-once/400 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
                        )
                        .unwrap();
                    let _ = stream.read_to_end(&mut Vec::new());
                });
            }
        },
    )
    .await;
    let e = &run.total.endpoints[0];
    assert_eq!(
        run.total.dropped, 0,
        "200 users absorb a 400 ms stall at 100/s"
    );
    assert_eq!(e.counts.requests + e.counts.cancelled + 1, server.served());
    // Each iteration was sent on time on its own user and connection, so
    // even the uncorrected latency sees the stall: nothing hides it.
    assert!(
        ms(e.histogram.max_us()) >= 300.0,
        "{}",
        ms(e.histogram.max_us())
    );
    assert!(
        ms(e.uncorrected.max_us()) >= 300.0,
        "{}",
        ms(e.uncorrected.max_us())
    );
}

#[tokio::test]
async fn a_stalled_generator_cannot_hide_behind_its_own_lateness() {
    let server = TestServer::start();
    let pid = std::process::id();
    let mut pauser: Option<std::process::Child> = None;
    let run = run_open(
        &server,
        "name: fast\nusers:\n  - tasks: [{request: {path: /ok}}]\n",
        open_load(100.0, 200),
        1,
        Duration::from_millis(2500),
        |_, elapsed| {
            if pauser.is_none() && elapsed >= Duration::from_millis(500) {
                // The whole process (generator and target alike) is frozen
                // for 500 ms, as a CPU-throttled pod or a paused VM is: the
                // iterations due meanwhile go out late, all at once.
                let child = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!("kill -STOP {pid}; sleep 0.5; kill -CONT {pid}"))
                    .spawn()
                    .unwrap();
                pauser = Some(child);
            }
        },
    )
    .await;
    let status = pauser.expect("the pause ran").wait().unwrap();
    assert!(status.success());
    let e = &run.total.endpoints[0];
    assert_eq!(run.total.dropped, 0);
    assert_eq!(e.counts.requests + e.counts.cancelled, server.served());
    assert_eq!(server.served(), run.due);
    let (corrected_p99, corrected_max) = (
        ms(e.histogram.value_at_quantile_us(0.99)),
        ms(e.histogram.max_us()),
    );
    let uncorrected_p99 = ms(e.uncorrected.value_at_quantile_us(0.99));
    // ~50 of ~250 iterations were due during the pause, up to 500 ms before
    // they could be sent: the corrected figures show it...
    assert!(corrected_max >= 400.0, "corrected max {corrected_max} ms");
    assert!(corrected_p99 >= 200.0, "corrected p99 {corrected_p99} ms");
    // ...while measured from the send the target looks as fast as it is.
    assert!(
        uncorrected_p99 < 100.0,
        "uncorrected p99 {uncorrected_p99} ms (corrected {corrected_p99} ms)"
    );
}
