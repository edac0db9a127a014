//! `cicada run --allow-target`: a host outside the list is refused with a
//! clear error and a non-zero exit before any request; inside, it runs.

mod support;

use std::time::Duration;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cicada_run_refuses_a_host_outside_the_list() {
    let target = start_target(TargetConfig::default()).await;
    let db = TestDatabase::sqlite().unwrap();
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--host",
        &target.url,
        "--database-url",
        db.url(),
        "--workers",
        "1",
        "-u",
        "1",
        "-r",
        "10",
        "-t",
        "2s",
    ];
    let (code, _, stderr) = run_cicada_env(
        &args,
        &[("CICADA_ALLOW_TARGET", "*.example.com,10.0.0.0/8")],
        Duration::from_secs(60),
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "target {} is not in the allowed targets (*.example.com, 10.0.0.0/8); \
             the controller's --allow-target decides",
            target.url
        )),
        "{stderr}"
    );
    assert_eq!(target_stats(&target.url).await["total"], 0);

    // A bad pattern is a usage error naming it.
    let mut bad = args.to_vec();
    bad.extend(["--allow-target", "http://shop.example.com"]);
    let (code, _, stderr) = run_cicada(&bad, Duration::from_secs(60)).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .contains("invalid target pattern \"http://shop.example.com\": give a host, not a URL"),
        "{stderr}"
    );

    // Inside the list: the run goes ahead.
    let mut inside = args.to_vec();
    inside.extend(["--allow-target", "127.0.0.0/8"]);
    let (code, _, stderr) = run_cicada(&inside, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(target_stats(&target.url).await["total"].as_u64().unwrap() > 0);
}
