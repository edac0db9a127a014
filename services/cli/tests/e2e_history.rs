//! History end to end: two real `cicada run`s (a fast and a 10x slower
//! sample target) into one SQLite file, then `cicada runs`, `compare`,
//! `trend` on the file and through a collector's HTTP API.

mod support;

use std::time::Duration;

use cicada_sample_target::{Latency, TargetConfig};
use cicada_store::testing::TestDatabase;
use support::{run_cicada, start_target, workspace_file};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn run_against(latency_ms: u64, database_url: &str, release: &str) -> serde_json::Value {
    let target = start_target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(latency_ms)),
        ..TargetConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let label = format!("release={release}");
    let args = [
        "run",
        scenario.to_str().unwrap(),
        "--host",
        &target.url,
        "--database-url",
        database_url,
        "--summary-json",
        summary.to_str().unwrap(),
        "--workers",
        "1",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "3s",
        "--label",
        &label,
    ];
    let (code, _, stderr) = run_cicada(&args, TIMEOUT).await;
    assert_eq!(code, 0, "cicada run failed: {stderr}");
    serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap()
}

async fn json(args: &[&str], expected_code: i32) -> serde_json::Value {
    let (code, stdout, stderr) = run_cicada(args, TIMEOUT).await;
    assert_eq!(code, expected_code, "cicada {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn metric<'a>(comparison: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    comparison["total"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_sqlite_and_through_a_collector() {
    let db = TestDatabase::sqlite().unwrap();
    let url = db.url();
    let a = run_against(2, url, "1").await;
    let b = run_against(20, url, "2").await;
    let (a_id, b_id) = (a["run_id"].as_str().unwrap(), b["run_id"].as_str().unwrap());
    let db_args = ["--database-url", url];

    let list = json(
        &[&["runs", "list", "--format", "json"][..], &db_args].concat(),
        0,
    )
    .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_id, a_id], "newest first");

    let show = json(
        &[&["runs", "show", a_id, "--format", "json"][..], &db_args].concat(),
        0,
    )
    .await;
    assert_eq!(
        show["total"]["requests"], a["total"]["requests"],
        "exact stored totals"
    );
    assert!(!show["series"].as_array().unwrap().is_empty());
    let windowed = json(
        &[
            &["runs", "show", a_id, "--from", "1s", "--format", "json"][..],
            &db_args,
        ]
        .concat(),
        0,
    )
    .await;
    let series_total: u64 = windowed["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(
        windowed["total"]["requests"].as_u64().unwrap(),
        series_total
    );
    assert!(
        windowed["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t_s"].as_i64().unwrap() >= 1)
    );

    let (code, _, _) = run_cicada(
        &[&["runs", "label", a_id, "env=ci"][..], &db_args].concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 0);
    let labelled = json(
        &[
            &["runs", "list", "--label", "env=ci", "--format", "json"][..],
            &db_args,
        ]
        .concat(),
        0,
    )
    .await;
    assert_eq!(labelled.as_array().unwrap().len(), 1);
    assert_eq!(labelled[0]["id"], a_id);

    // B is 10x slower: a regression (exit 3); A against B is not.
    let ab = json(
        &[&["compare", a_id, b_id, "--format", "json"][..], &db_args].concat(),
        3,
    )
    .await;
    assert_eq!(ab["regression"], true);
    assert_eq!(
        metric(&ab, "requests")["a"].as_f64().unwrap(),
        a["total"]["requests"].as_f64().unwrap()
    );
    assert_eq!(
        metric(&ab, "requests")["b"].as_f64().unwrap(),
        b["total"]["requests"].as_f64().unwrap()
    );
    assert!(metric(&ab, "p50")["regression"].as_bool().unwrap());
    let ba = json(
        &[&["compare", b_id, a_id, "--format", "json"][..], &db_args].concat(),
        0,
    )
    .await;
    assert_eq!(ba["regression"], false);
    let baseline = json(
        &[
            &[
                "compare",
                b_id,
                "--baseline",
                "latest-passing",
                "--format",
                "json",
            ][..],
            &db_args,
        ]
        .concat(),
        3,
    )
    .await;
    assert_eq!(baseline["a"]["id"], a_id);
    let (code, stdout, _) = run_cicada(
        &[&["compare", a_id, b_id, "--format", "csv"][..], &db_args].concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 3);
    assert!(
        stdout.starts_with("endpoint,metric,a,b,delta,relative,regression\n"),
        "{stdout}"
    );
    let (code, _, stderr) = run_cicada(
        &[
            &["compare", a_id, b_id, "--from", "5s", "--to", "2s"][..],
            &db_args,
        ]
        .concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 2, "{stderr}");

    let trend = json(
        &[
            &[
                "trend",
                "weighted-reads",
                "--metric",
                "p50",
                "--last",
                "30",
                "--format",
                "json",
            ][..],
            &db_args,
        ]
        .concat(),
        0,
    )
    .await;
    let points = trend["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["run_id"], a_id, "oldest first");
    assert!(points[1]["value"].as_f64().unwrap() > points[0]["value"].as_f64().unwrap());

    // The same through a collector's HTTP API over the same database.
    let store = cicada_store::connect(url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cicada_collector::serve_http(
        store,
        None,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let remote = ["--collector", collector.as_str()];
    let via = json(
        &[&["compare", a_id, b_id, "--format", "json"][..], &remote].concat(),
        3,
    )
    .await;
    assert_eq!(via, ab);
    let via = json(
        &[
            &[
                "compare",
                b_id,
                "--baseline",
                "latest-passing",
                "--format",
                "json",
            ][..],
            &remote,
        ]
        .concat(),
        3,
    )
    .await;
    assert_eq!(via["a"]["id"], a_id);
    let via = json(
        &[
            &[
                "trend",
                "weighted-reads",
                "--metric",
                "p50",
                "--format",
                "json",
            ][..],
            &remote,
        ]
        .concat(),
        0,
    )
    .await;
    assert_eq!(via, trend);
    let (code, _, _) = run_cicada(
        &[&["runs", "label", b_id, "env=ci"][..], &remote].concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 0);
    let via = json(
        &[
            &["runs", "list", "--label", "env=ci", "--format", "json"][..],
            &remote,
        ]
        .concat(),
        0,
    )
    .await;
    assert_eq!(via.as_array().unwrap().len(), 2);
    let (code, _, _) =
        run_cicada(&[&["runs", "delete", a_id][..], &remote].concat(), TIMEOUT).await;
    assert_eq!(code, 0);
    let (code, _, stderr) =
        run_cicada(&[&["runs", "show", a_id][..], &remote].concat(), TIMEOUT).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("not found"), "{stderr}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // Runs finished by this version were rolled up at finish; an unknown
    // run is an error that names it.
    let (code, _, stderr) = run_cicada(
        &[&["runs", "rollup", "--all"][..], &db_args].concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("rolled up 0 of 1 runs (1 already had a rollup)"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cicada(
        &[&["runs", "rollup", "nope"][..], &db_args].concat(),
        TIMEOUT,
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("nope") && stderr.contains("not found"),
        "{stderr}"
    );

    // Deleted for the local path too.
    let (code, _, _) =
        run_cicada(&[&["runs", "delete", b_id][..], &db_args].concat(), TIMEOUT).await;
    assert_eq!(code, 0);
    let list = json(
        &[&["runs", "list", "--format", "json"][..], &db_args].concat(),
        0,
    )
    .await;
    assert!(list.as_array().unwrap().is_empty());
}
