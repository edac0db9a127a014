//! End to end as separate processes: cicada-sample-target, cicada-collector
//! (on Postgres, then on SQLite), cicada-controller, two cicada-worker
//! processes, and `cicada start`. The invariant: what cicada stored equals
//! what the target served, exactly, per endpoint.

mod support;

use std::time::Duration;

use cicada_store::testing::TestDatabase;
use support::cluster::*;
use support::*;

/// `cicada start` of the weighted-reads scenario on a cluster of separate
/// processes: exact conservation per endpoint, and the 60:1:14:5 split over
/// at least 10,000 requests.
async fn separate_processes_conserve(database_url: &str) {
    let cluster = Cluster::start(database_url, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let (code, stdout, stderr) = run_cicada(
        &[
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &cluster.controller_url,
            "--host",
            &cluster.target_url,
            "-u",
            "20",
            "-r",
            "100",
            "-t",
            "6s",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(code, 0, "cicada start failed: {stderr}");
    assert!(stdout.contains("Aggregated"), "{stdout}");
    assert!(stderr.contains("req/s"), "no live progress line: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["total"]["failures"].as_u64().unwrap(), 0);
    let counts = assert_conserved(&cluster.target_url, database_url, &summary).await;
    assert_split(&counts, &WEIGHTED_READS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_conserve_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    separate_processes_conserve(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_conserve_on_sqlite() {
    let db = TestDatabase::sqlite().unwrap();
    separate_processes_conserve(db.url()).await;
}

/// `--detach` prints the run id and returns at once; the run goes on,
/// `cicada scale` changes its users both ways, `cicada stop` ends it; the
/// stored run still conserves exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_run_is_stopped_by_id() {
    let db = TestDatabase::sqlite().unwrap();
    let cluster = Cluster::start(db.url(), 1).await;
    let run_id = cluster.start_detached("4", &["-t", "10m"]).await;
    let controller = &cluster.controller_url;
    wait_for_users(controller, "4 users", |users| total(users) == 4).await;
    cluster.cicada(&["scale", &run_id, "-u", "7"]).await;
    wait_for_users(controller, "scaled to 7", |users| total(users) == 7).await;
    cluster
        .cicada(&["scale", &run_id, "-u", "2", "-r", "50"])
        .await;
    wait_for_users(controller, "scaled down to 2", |users| total(users) == 2).await;
    cluster.cicada(&["stop", &run_id]).await;

    let run = wait_ended(db.url(), &run_id).await;
    assert_eq!(run.status, cicada_store::RunStatus::Finished, "{run:?}");
    cluster.assert_stored_equals_served(&run_id).await;
}

/// A worker killed (SIGTERM) mid-run: the run goes on, its users are
/// re-placed on the other worker, a worker that joins mid-run gets a share
/// at once, and the stored totals still equal what the target served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_leave_and_join_mid_run_without_losing_a_request() {
    let db = TestDatabase::postgres().await.unwrap();
    let cluster = Cluster::start(db.url(), 1).await;
    let mut leaving = spawn_worker(&cluster.controller_url, "worker-leaving");
    wait_for_workers(&cluster.controller_url, 2).await;

    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let args: Vec<String> = [
        "start",
        scenario.to_str().unwrap(),
        "--controller",
        &cluster.controller_url,
        "--host",
        &cluster.target_url,
        "-u",
        "10",
        "-r",
        "100",
        "-t",
        "20s",
        "--summary-json",
        summary_path.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cicada(&args, Duration::from_secs(120)).await
    });

    let controller = cluster.controller_url.clone();
    wait_for_users(&controller, "5 + 5 at the start", |users| {
        users.iter().map(|(_, n)| n).sum::<u32>() == 10 && users.iter().all(|(_, n)| *n == 5)
    })
    .await;
    leaving.terminate(Duration::from_secs(30));
    wait_for_users(&controller, "all 10 on worker-0", |users| {
        users == [("worker-0".to_owned(), 10)]
    })
    .await;
    let _joining = spawn_worker(&controller, "worker-joining");
    wait_for_users(&controller, "the new worker takes half", |users| {
        users.len() == 2 && users.iter().all(|(_, n)| *n == 5)
    })
    .await;

    let (code, stdout, stderr) = run.await.unwrap();
    assert_eq!(code, 0, "cicada start failed: {stderr}");
    assert!(stdout.contains("Aggregated"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let counts = assert_conserved(&cluster.target_url, db.url(), &summary).await;
    assert_split(&counts, &WEIGHTED_READS);
}

/// `--expect-workers` waits for workers and fails clearly when too few come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_workers_waits_then_gives_up() {
    let db = TestDatabase::sqlite().unwrap();
    let cluster = Cluster::start(db.url(), 1).await;
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let (code, _, stderr) = run_cicada(
        &[
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &cluster.controller_url,
            "--host",
            &cluster.target_url,
            "-t",
            "1s",
            "--expect-workers",
            "3",
            "--expect-workers-timeout",
            "1s",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("only 1 of the 3 expected workers connected within 1 s"),
        "{stderr}"
    );
}

/// A controller that crashes (SIGKILL) mid-run and comes back: its worker
/// reconnects, the orphaned run is stopped and stored as failed with the
/// reason (never left "running"), and every request the target served is in
/// the store exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_controller_ends_the_orphaned_run_on_restart() {
    let db = TestDatabase::postgres().await.unwrap();
    let mut cluster = Cluster::start(db.url(), 1).await;
    let run_id = cluster.start_detached("4", &[]).await;
    wait_for_users(&cluster.controller_url, "4 users", |users| {
        total(users) == 4
    })
    .await;

    cluster.controller.kill();
    cluster.controller = spawn_controller(&cluster.controller_url, &cluster.collector_url);

    let run = wait_ended(db.url(), &run_id).await;
    assert_eq!(run.status, cicada_store::RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("controller restarted during the run")
    );
    // The worker is free again, and everything it recorded is stored once.
    wait_for_users(&cluster.controller_url, "the worker is idle", |users| {
        users.len() == 1 && users[0].1 == 0
    })
    .await;
    cluster.assert_stored_equals_served(&run_id).await;
}

/// A worker that stops heartbeating (SIGSTOP: a hung pod) is marked missing
/// after three heartbeats and its users are re-placed on the other worker;
/// when it comes back (SIGCONT) it rejoins and the load is rebalanced, all
/// without stopping the run, and every request is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_replaced_then_rejoins() {
    let db = TestDatabase::sqlite().unwrap();
    let cluster = Cluster::start(db.url(), 1).await;
    let hung = spawn_worker(&cluster.controller_url, "worker-hung");
    wait_for_workers(&cluster.controller_url, 2).await;
    let run_id = cluster.start_detached("6", &[]).await;
    let controller = cluster.controller_url.clone();
    let even = |users: &[(String, u32)]| users.len() == 2 && users.iter().all(|(_, n)| *n == 3);
    wait_for_users(&controller, "3 + 3", even).await;

    let pid = hung.0.id().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    wait_for_users(&controller, "all 6 on worker-0", |users| {
        users == [("worker-0".to_owned(), 6)]
    })
    .await;
    signal("-CONT");
    wait_for_users(&controller, "back to 3 + 3", even).await;

    cluster.cicada(&["stop", &run_id]).await;
    let run = wait_ended(db.url(), &run_id).await;
    assert_eq!(run.status, cicada_store::RunStatus::Finished, "{run:?}");
    cluster.assert_stored_equals_served(&run_id).await;
    drop(hung);
}

/// A worker restarted under the same `--worker-id` (a StatefulSet pod)
/// rejoins the run; its new deltas start at seq 1 again under a fresh source
/// id, so none is taken for a re-sent old one: every request is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_the_same_id_loses_nothing() {
    let db = TestDatabase::sqlite().unwrap();
    let cluster = Cluster::start(db.url(), 1).await;
    let mut again = spawn_worker(&cluster.controller_url, "worker-again");
    wait_for_workers(&cluster.controller_url, 2).await;
    let run_id = cluster.start_detached("4", &[]).await;
    let controller = cluster.controller_url.clone();
    let even = |users: &[(String, u32)]| users.len() == 2 && users.iter().all(|(_, n)| *n == 2);
    wait_for_users(&controller, "2 + 2", even).await;

    again.terminate(Duration::from_secs(30));
    wait_for_users(&controller, "all 4 on worker-0", |users| {
        users == [("worker-0".to_owned(), 4)]
    })
    .await;
    let _again = spawn_worker(&controller, "worker-again");
    wait_for_users(&controller, "2 + 2 again", even).await;
    // Long enough for the restarted worker to send a few deltas.
    tokio::time::sleep(Duration::from_secs(3)).await;

    cluster.cicada(&["stop", &run_id]).await;
    let run = wait_ended(db.url(), &run_id).await;
    assert_eq!(run.status, cicada_store::RunStatus::Finished, "{run:?}");
    cluster.assert_stored_equals_served(&run_id).await;
}
