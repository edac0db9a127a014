//! `--allow-target`: a run whose host is outside the list is refused by
//! gRPC and by the web API before anything is sent; one inside runs.
//! Everything on loopback: a real collector, controller, worker and target.

mod web_support;

use cicada_proto::v1::StartRunRequest;
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_scenario::allow::AllowList;
use web_support::{Cluster, Options};

const SCENARIO: &str = "name: allow
users:
  - wait: { constant: 5ms }
    tasks:
      - request: { path: /Test/V1 }
";

fn one_worker() -> Options {
    Options {
        workers: 1,
        error_rate: 0.0,
        web_auth: None,
        token: None,
        scenarios: Vec::new(),
    }
}

async fn cluster_allowing(patterns: &[&str]) -> Cluster {
    let allow = AllowList::parse(patterns).unwrap();
    Cluster::start_with(one_worker(), move |config| config.allow_targets = allow).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_list_is_refused_before_anything_is_sent() {
    let cluster = cluster_allowing(&["*.example.com", "10.0.0.0/8"]).await;
    let target = cluster.target_url.clone();
    let expected = format!(
        "target {target} is not in the allowed targets (*.example.com, 10.0.0.0/8); \
         the controller's --allow-target decides"
    );

    // The web UI's JSON API: 403 with the message the UI shows.
    let client = cluster.client(None);
    let refused = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_yaml": SCENARIO, "host": target, "users": 1, "spawn_rate": 1 }),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"], expected.as_str());

    // gRPC (what `cicada start` calls): PERMISSION_DENIED, same message,
    // for a host given with the run and for the scenario's own `host:`.
    let mut grpc = ControllerClient::connect(cluster.controller_url.clone())
        .await
        .unwrap();
    let request = StartRunRequest {
        scenario_yaml: SCENARIO.to_owned(),
        host: target.clone(),
        users: 1,
        spawn_rate: 1.0,
        ..StartRunRequest::default()
    };
    let status = grpc.start_run(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(status.message(), expected);
    let from_scenario = StartRunRequest {
        scenario_yaml: format!("host: {target}\n{SCENARIO}"),
        host: String::new(),
        ..request
    };
    let status = grpc.start_run(from_scenario).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(status.message(), expected);

    // Nothing reached the target and the worker was never claimed.
    assert_eq!(cluster.target_total().await, 0);
    let status = client.get("/api/status").await.json();
    assert_eq!(status["idle_workers"], 1, "{status}");
    assert_eq!(status["live_runs"], serde_json::json!([]), "{status}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_inside_the_list_runs_and_the_workers_get_the_list() {
    let cluster = cluster_allowing(&["127.0.0.0/8"]).await;
    // By name: the controller resolves localhost into the block, and the
    // worker connects only to the addresses inside it.
    let host = cluster.target_url.replace("127.0.0.1", "localhost");
    let client = cluster.client(None);
    let started = client
        .post(
            "/api/runs",
            serde_json::json!({ "scenario_yaml": SCENARIO, "host": host, "users": 1, "spawn_rate": 100, "run_time": "1s" }),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let run_id = started.json()["run_id"].as_str().unwrap().to_owned();
    let end = cluster.run_end(&client, &run_id).await;
    assert_eq!(end["state"], "finished", "{end}");
    let served = cluster.target_total().await;
    assert!(served > 0);
    assert_eq!(end["total"]["failures"], 0, "{end}");
    assert_eq!(cluster.stored_requests(&run_id).await, served);
    cluster.shutdown().await;
}
