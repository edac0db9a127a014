//! Connection lifecycle end to end through `cicada run`: users recycling
//! their connections reach a target instance added behind a round-robin
//! balancer mid-run (the HPA case: kube-proxy balances per connection),
//! and every new connection the balancer accepted is one the run recorded.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;
use tokio::net::{TcpListener, TcpStream};

/// A loopback TCP balancer: each new connection goes to the next upstream
/// in turn (like kube-proxy's per-connection balancing); upstreams can be
/// added while it runs.
struct Balancer {
    url: String,
    state: Arc<Mutex<BalancerState>>,
}

#[derive(Default)]
struct BalancerState {
    upstreams: Vec<String>,
    next: usize,
    /// Per upstream: connections accepted and when the first came.
    accepted: Vec<(u64, Option<Instant>)>,
}

impl Balancer {
    async fn start(first: &str) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(BalancerState::default()));
        let balancer = Balancer {
            url,
            state: state.clone(),
        };
        balancer.add(first);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = {
                    let mut state = state.lock().unwrap();
                    let index = state.next % state.upstreams.len();
                    state.next += 1;
                    let accepted = &mut state.accepted[index];
                    accepted.0 += 1;
                    accepted.1.get_or_insert_with(Instant::now);
                    state.upstreams[index].clone()
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        balancer
    }

    fn add(&self, url: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .upstreams
            .push(url.trim_start_matches("http://").to_owned());
        state.accepted.push((0, None));
    }

    /// Connections accepted per upstream, in the order they were added.
    fn accepted(&self) -> Vec<(u64, Option<Instant>)> {
        self.state.lock().unwrap().accepted.clone()
    }
}

/// The summary's new connections of `endpoint`.
fn connections(summary: &serde_json::Value, endpoint: &str) -> u64 {
    summary["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["endpoint"] == endpoint)
        .unwrap_or_else(|| panic!("no connections for {endpoint}: {summary}"))["connections"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_added_behind_the_balancer_gets_traffic_within_max_age() {
    let db = TestDatabase::sqlite().unwrap();
    let first = start_target(TargetConfig::default()).await;
    let second = start_target(TargetConfig::default()).await;
    let balancer = Balancer::start(&first.url).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: recycle
connection: {max_age: 1s}
users:
  - wait: {constant: 20ms}
    tasks: [{request: {path: /health}}]
"#,
    );
    let host = balancer.url.clone();
    let database_url = db.url().to_owned();
    let run = tokio::spawn(async move {
        cicada_run_with(
            &scenario,
            &host,
            &database_url,
            &["--workers", "2", "-u", "10", "-r", "100", "-t", "5s"],
            &[],
        )
        .await
    });
    // Once the users run against the first instance, the second joins.
    let deadline = Instant::now() + Duration::from_secs(30);
    while target_stats(&first.url).await["total"].as_u64().unwrap() < 50 {
        assert!(Instant::now() < deadline, "the run did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added = Instant::now();
    balancer.add(&second.url);
    let run = run.await.unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);

    let accepted = balancer.accepted();
    let (second_connections, second_first) = accepted[1];
    let first_seen = second_first.expect("the added instance got no connection") - added;
    assert!(
        first_seen <= Duration::from_millis(2500),
        "first connection to the added instance {first_seen:?} after it joined (max_age 1s)"
    );
    let second_served = target_stats(&second.url).await["total"].as_u64().unwrap();
    let first_served = target_stats(&first.url).await["total"].as_u64().unwrap();
    assert!(second_connections >= 5, "{accepted:?}");
    assert!(
        second_served > 100,
        "the added instance served {second_served}"
    );

    // Every request either instance served is in the run, and every
    // connection the balancer accepted is one the run opened.
    let total = &run.summary["total"];
    assert_eq!(total["cancelled"], 0, "{}", run.summary);
    assert_eq!(
        total["requests"].as_u64().unwrap(),
        first_served + second_served
    );
    let stored = stored_run(db.url(), run.summary["run_id"].as_str().unwrap()).await;
    assert_eq!(stored.summary_total.requests, first_served + second_served);
    let opened: u64 = accepted.iter().map(|(n, _)| n).sum();
    assert_eq!(connections(&run.summary, "GET /health"), opened);
    // 10 users over 5 s, each connection replaced after about 1 s.
    assert!((30..=120).contains(&opened), "{opened} connections");
    assert!(run.stdout.contains("\nConnections: "), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_per_iteration_open_one_connection_each() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let balancer = Balancer::start(&target.url).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_file(
        &dir,
        r#"
name: fresh
users:
  - name: closer
    connection: close
    tasks: [{request: {path: /health}}]
  - name: sessions
    connection: per_iteration
    tasks:
      - name: visit
        steps:
          - {method: POST, path: /session, form: {user: "u{{ user_id }}"}}
          - {path: /account}
"#,
    );
    let run = cicada_run_with(
        &scenario,
        &balancer.url,
        db.url(),
        &["-u", "4", "-r", "100", "-t", "2s"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_conserved(&target.url, db.url(), &run.summary).await;
    let endpoint = |name: &str| -> u64 {
        run.summary["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["requests"]
            .as_u64()
            .unwrap()
    };
    let health = endpoint("/health");
    let visits = endpoint("visit");
    assert!(health > 50 && visits > 20, "{}", run.summary);
    // A connection per /health request, and one per visit (opened by its
    // first step; the second step rides on it): a visit cut short by the
    // end of the run (its 2 users) opened one but is not a recorded visit.
    assert_eq!(connections(&run.summary, "GET /health"), health);
    let sessions = connections(&run.summary, "POST /session");
    assert!(
        (visits..=visits + 2).contains(&sessions),
        "{sessions} for {visits} visits"
    );
    assert!(
        run.summary["connections"].as_array().unwrap().len() == 2,
        "{}",
        run.summary
    );
    let opened: u64 = balancer.accepted().iter().map(|(n, _)| n).sum();
    assert_eq!(opened, health + sessions);
}
