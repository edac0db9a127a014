//! End to end with the shared token: collector, controller and a worker as
//! separate processes, all with CICADA_TOKEN; `cicada start` with it runs and
//! conserves exactly; without it every call is refused (UNAUTHENTICATED);
//! a worker with a wrong token never joins; `cicada health` needs no token;
//! a non-loopback listener without a token refuses to start.

mod support;

use std::time::Duration;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

const TOKEN: &str = "e2e-shared-token";
const AUTH: &[(&str, &str)] = &[("CICADA_TOKEN", TOKEN)];

async fn workers(controller: &str, env: &[(&str, &str)]) -> (i32, Vec<String>, String) {
    let (code, stdout, stderr) = run_cicada_env(
        &["workers", "--controller", controller],
        env,
        Duration::from_secs(30),
    )
    .await;
    let ids = stdout
        .lines()
        .filter(|line| line.starts_with("worker-"))
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect();
    (code, ids, stderr)
}

/// `cicada health --grpc ADDR` until it reports SERVING (bounded).
async fn wait_healthy(addr: &str) {
    for _ in 0..150 {
        let (code, _, _) =
            run_cicada_env(&["health", "--grpc", addr], &[], Duration::from_secs(10)).await;
        if code == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never reported SERVING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_shared_token_runs_and_refuses_strangers() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let collector_addr = format!("127.0.0.1:{}", free_port());
    let history_url = format!("http://127.0.0.1:{}", free_port());
    let _collector = spawn_env(
        "cicada-collector",
        &[
            "--listen",
            &collector_addr,
            "--http-listen",
            history_url.trim_start_matches("http://"),
            "--database-url",
            db.url(),
        ],
        AUTH,
    );
    let collector_url = format!("http://{collector_addr}");
    let controller_addr = format!("127.0.0.1:{}", free_port());
    let controller_url = format!("http://{controller_addr}");
    let _controller = spawn_env(
        "cicada-controller",
        &[
            "--listen",
            &controller_addr,
            "--collector",
            &collector_url,
            "--web-listen",
            "off",
        ],
        AUTH,
    );
    // Health needs no token.
    wait_healthy(&collector_addr).await;
    wait_healthy(&controller_addr).await;

    let _worker = spawn_env(
        "cicada-worker",
        &[
            "--controller",
            &controller_url,
            "--worker-id",
            "worker-good",
        ],
        AUTH,
    );
    let _stranger = spawn_env(
        "cicada-worker",
        &[
            "--controller",
            &controller_url,
            "--worker-id",
            "worker-stranger",
        ],
        &[("CICADA_TOKEN", "not-the-token")],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, ids, stderr) = workers(&controller_url, AUTH).await;
        assert_eq!(code, 0, "{stderr}");
        if ids.contains(&"worker-good".to_owned()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never joined"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stranger has had a second of retries by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, ids, _) = workers(&controller_url, AUTH).await;
    assert_eq!(ids, ["worker-good"], "a wrong token must not join");

    // The CLI without the token, or with a wrong one, is refused.
    let (code, _, stderr) = workers(&controller_url, &[]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("missing token"), "{stderr}");
    let (code, _, stderr) = workers(&controller_url, &[("CICADA_TOKEN", "nope")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("wrong token"), "{stderr}");

    // With the token: a whole run, controller -> collector and worker ->
    // collector authenticated too, conserving exactly.
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let (code, _, stderr) = run_cicada_env(
        &[
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &controller_url,
            "--host",
            &target.url,
            "-u",
            "5",
            "-r",
            "100",
            "-t",
            "3s",
            "--summary-json",
            summary_path.to_str().unwrap(),
        ],
        AUTH,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(code, 0, "cicada start with the token failed: {stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["total"]["failures"].as_u64().unwrap(), 0);
    assert!(summary["total"]["requests"].as_u64().unwrap() > 0);
    assert_conserved(&target.url, db.url(), &summary).await;

    // The history API on the collector's HTTP port needs the token too.
    let run_id = summary["run_id"].as_str().unwrap();
    let list = |env: &'static [(&'static str, &'static str)]| {
        let history_url = history_url.clone();
        async move {
            run_cicada_env(
                &[
                    "runs",
                    "list",
                    "--collector",
                    &history_url,
                    "--format",
                    "json",
                ],
                env,
                Duration::from_secs(30),
            )
            .await
        }
    };
    let (code, _, stderr) = list(&[]).await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains("401") && stderr.contains("missing token"),
        "{stderr}"
    );
    let (code, stdout, stderr) = list(AUTH).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(run_id), "{stdout}");
}

#[tokio::test]
async fn a_non_loopback_listener_without_a_token_refuses_to_start() {
    for (binary_name, args) in [
        ("cicada-controller", ["--collector", "http://127.0.0.1:9"]),
        ("cicada-collector", ["--database-url", "sqlite::memory:"]),
    ] {
        let output = std::process::Command::new(binary(binary_name))
            .args(["--listen", "0.0.0.0:0"])
            .args(args)
            .env_remove("CICADA_TOKEN")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{binary_name} started: {stderr}");
        assert!(stderr.contains("CICADA_TOKEN"), "{binary_name}: {stderr}");
    }
}
