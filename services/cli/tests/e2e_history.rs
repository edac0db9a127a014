//! History end to end: two real `cicada run`s (a fast and a 10x slower
//! sample target) into one database (SQLite and Postgres), then `cicada
//! runs`, `compare`, `trend` on the database, through a collector's
//! `cicada.v1.History` gRPC service (`--collector-grpc`, with a token) and
//! through its HTTP API (`--collector`).

mod support;

use std::time::Duration;

use cicada_sample_target::{Latency, TargetConfig};
use cicada_store::testing::TestDatabase;
use support::{cicada_run_with, run_cicada, run_cicada_env, start_target, workspace_file};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn run_against(latency_ms: u64, database_url: &str, release: &str) -> serde_json::Value {
    let target = start_target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(latency_ms)),
        ..TargetConfig::default()
    })
    .await;
    let scenario = workspace_file("examples/weighted-reads.yaml");
    let label = format!("release={release}");
    let extra = [
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
    let out = cicada_run_with(&scenario, &target.url, database_url, &extra, &[]).await;
    assert_eq!(out.code, 0, "cicada run failed: {}", out.stderr);
    out.summary
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
    history_end_to_end(TestDatabase::sqlite().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_on_postgres_and_through_a_collector() {
    history_end_to_end(TestDatabase::postgres().await.unwrap()).await;
}

async fn history_end_to_end(db: TestDatabase) {
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
    // A against B: the body of the distribution is 10x faster. The tail of
    // a 2 ms run can still cross the slow run's on a loaded machine (one
    // scheduling hiccup), so only the body is asserted, and the exit code
    // must agree with whatever the flag says.
    let (code, stdout, stderr) = run_cicada(
        &[&["compare", b_id, a_id, "--format", "json"][..], &db_args].concat(),
        TIMEOUT,
    )
    .await;
    let ba: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    for body in ["p50", "p90"] {
        assert!(!metric(&ba, body)["regression"].as_bool().unwrap(), "{ba}");
        assert!(metric(&ba, body)["delta"].as_f64().unwrap() < 0.0, "{ba}");
    }
    let flagged = ba["regression"].as_bool().unwrap();
    assert_eq!(code, if flagged { 3 } else { 0 }, "{ba}");
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

    let grpc = GrpcCollector::start(url).await;
    grpc.same_as_local(a_id, b_id, &db_args).await;

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
        stderr.contains("rolled up 0 of 1 runs (1 already had a complete rollup)"),
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

    // Deleted through gRPC: gone for every path.
    grpc.delete(b_id).await;
    let (code, _, stderr) =
        run_cicada(&[&["runs", "delete", b_id][..], &db_args].concat(), TIMEOUT).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("run {b_id} not found")),
        "{stderr}"
    );
    let list = json(
        &[&["runs", "list", "--format", "json"][..], &db_args].concat(),
        0,
    )
    .await;
    assert!(list.as_array().unwrap().is_empty());
}

const TOKEN: &str = "e2e-history-token";

/// A collector's gRPC service (token required) over the database `cicada
/// run` wrote.
struct GrpcCollector {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl GrpcCollector {
    async fn start(database_url: &str) -> Self {
        let store = cicada_store::connect(database_url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let options = cicada_collector::ServeOptions {
            token: Some(cicada_proto::auth::Token::new(TOKEN).unwrap()),
            ..Default::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(cicada_collector::serve_with(
            store,
            options,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url,
            stop: Some(stop),
            task,
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--collector-grpc", &self.url, "--token", TOKEN]].concat()
    }

    /// Every history command through gRPC answers what it answers on the
    /// database.
    async fn same_as_local(&self, a_id: &str, b_id: &str, db_args: &[&str]) {
        // The exit code is the local one (a regression is 3), whatever it is.
        let same = async |args: &[&str]| {
            let (code, stdout, stderr) = run_cicada(&[args, db_args].concat(), TIMEOUT).await;
            assert!(code == 0 || code == 3, "cicada {args:?}: {stderr}");
            let local: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let via = json(&self.args(args), code).await;
            assert_eq!(via, local, "cicada {args:?}");
            via
        };
        // No token: refused.
        let (code, _, stderr) =
            run_cicada(&["runs", "list", "--collector-grpc", &self.url], TIMEOUT).await;
        assert_eq!(code, 1);
        assert!(stderr.contains("missing token"), "{stderr}");

        // The collector's address and token from the environment.
        let (code, stdout, stderr) = run_cicada_env(
            &["runs", "list", "--format", "json"],
            &[
                ("CICADA_COLLECTOR_GRPC", &self.url),
                ("CICADA_TOKEN", TOKEN),
            ],
            TIMEOUT,
        )
        .await;
        assert_eq!(code, 0, "{stderr}");
        let via: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let local = json(
            &[&["runs", "list", "--format", "json"][..], db_args].concat(),
            0,
        )
        .await;
        assert_eq!(via, local);
        assert_eq!(via.as_array().unwrap().len(), 2);

        let via = same(&["runs", "show", a_id, "--format", "json"]).await;
        // Users per second: the run's 4 users once ramped up.
        let users: Vec<u64> = via["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["users"].as_u64().unwrap())
            .collect();
        assert!(users.iter().all(|&u| u <= 4), "{users:?}");
        assert_eq!(users.iter().max(), Some(&4), "{users:?}");
        same(&["runs", "show", a_id, "--from", "1s", "--format", "json"]).await;
        let ab = same(&["compare", a_id, b_id, "--format", "json"]).await;
        assert_eq!(ab["regression"], true);
        same(&[
            "compare", b_id, a_id, "--from", "1s", "--to", "3s", "--format", "json",
        ])
        .await;
        let via = same(&[
            "compare",
            b_id,
            "--baseline",
            "latest-passing",
            "--format",
            "json",
        ])
        .await;
        assert_eq!(via["a"]["id"], a_id);
        let via = same(&[
            "trend",
            "weighted-reads",
            "--metric",
            "p50",
            "--format",
            "json",
        ])
        .await;
        assert_eq!(via["points"].as_array().unwrap().len(), 2);
        same(&[
            "trend",
            "weighted-reads",
            "--metric",
            "p99.9",
            "--endpoint",
            "GET /nope",
            "--last",
            "1",
            "--format",
            "json",
        ])
        .await;

        let (code, _, stderr) =
            run_cicada(&self.args(&["runs", "label", b_id, "tier=gold"]), TIMEOUT).await;
        assert_eq!(code, 0);
        assert!(stderr.contains("tier=gold"), "{stderr}");
        let labelled = json(
            &self.args(&["runs", "list", "--label", "tier=gold", "--format", "json"]),
            0,
        )
        .await;
        assert_eq!(labelled.as_array().unwrap().len(), 1);
        assert_eq!(labelled[0]["id"], b_id);
        let (code, _, _) = run_cicada(
            &self.args(&["runs", "label", b_id, "--remove", "tier"]),
            TIMEOUT,
        )
        .await;
        assert_eq!(code, 0);
        let labelled = json(
            &self.args(&["runs", "list", "--label", "tier=gold", "--format", "json"]),
            0,
        )
        .await;
        assert!(labelled.as_array().unwrap().is_empty());

        // Errors say what is wrong, as locally.
        let (code, _, stderr) =
            run_cicada(&self.args(&["runs", "show", "no-such-run"]), TIMEOUT).await;
        assert_eq!(code, 1);
        assert!(stderr.contains("run no-such-run not found"), "{stderr}");
    }

    async fn delete(mut self, run_id: &str) {
        let (code, _, stderr) = run_cicada(&self.args(&["runs", "delete", run_id]), TIMEOUT).await;
        assert_eq!(code, 0, "{stderr}");
        let (code, _, stderr) = run_cicada(&self.args(&["runs", "show", run_id]), TIMEOUT).await;
        assert_eq!(code, 1);
        assert!(
            stderr.contains(&format!("run {run_id} not found")),
            "{stderr}"
        );
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}
