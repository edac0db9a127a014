//! End to end as separate processes: cicada-collector on Postgres,
//! cicada-controller, two cicada-worker processes, and `cicada start`, against
//! a real sample target. Exact conservation between target and store.

mod support;

use std::time::Duration;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

async fn wait_for_workers(controller: &str, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, _) = run_cicada(
            &["workers", "--controller", controller],
            Duration::from_secs(30),
        )
        .await;
        let connected = stdout.lines().filter(|l| l.starts_with("worker-")).count();
        if code == 0 && connected >= expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not register: {stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_conserve_on_postgres() {
    let db = TestDatabase::postgres().await.unwrap();
    let target = start_target(TargetConfig::default()).await;

    let collector_addr = format!("127.0.0.1:{}", free_port());
    let _collector = spawn(
        "cicada-collector",
        &["--listen", &collector_addr, "--database-url", db.url()],
    );
    let controller_addr = format!("127.0.0.1:{}", free_port());
    let controller = format!("http://{controller_addr}");
    let _controller = spawn(
        "cicada-controller",
        &[
            "--listen",
            &controller_addr,
            "--collector",
            &format!("http://{collector_addr}"),
        ],
    );
    let _workers: Vec<Process> = (0..2)
        .map(|i| {
            spawn(
                "cicada-worker",
                &[
                    "--controller",
                    &controller,
                    "--worker-id",
                    &format!("worker-{i}"),
                ],
            )
        })
        .collect();
    wait_for_workers(&controller, 2).await;

    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/iot-device.yaml");
    let (code, stdout, stderr) = run_cicada(
        &[
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &controller,
            "--host",
            &target.url,
            "-u",
            "40",
            "-r",
            "40",
            "-t",
            "5s",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(code, 0, "cicada start failed: {stderr}");
    assert!(stdout.contains("Aggregated"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();

    let served = target_stats(&target.url).await["total"].as_u64().unwrap();
    let total = &summary["total"];
    let recorded = total["requests"].as_u64().unwrap() + total["cancelled"].as_u64().unwrap();
    assert_eq!(served, recorded, "target served != recorded");
    assert!(recorded > 0);

    let stored = stored_run(db.url(), summary["run_id"].as_str().unwrap()).await;
    assert_eq!(stored.seconds_total, stored.summary_total);
    assert_eq!(
        stored.summary_total.requests + stored.summary_total.cancelled,
        served
    );
}
