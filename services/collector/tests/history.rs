//! `cicada.v1.History` on a real collector (token set) over loopback gRPC,
//! on Postgres and SQLite: every answer equals what `cicada_history`
//! computes on the same store, errors keep their codes and variants, and
//! nothing answers without the token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cicada_collector::CollectorConfig;
use cicada_histogram::{Counts, LatencyHistogram};
use cicada_history::{HistoryClient, HistoryError, Metric, Tolerance, Window};
use cicada_proto::auth::{AttachToken, Token};
use cicada_proto::health::{HealthCheckRequest, HealthClient, health_check_response};
use cicada_proto::v1 as pb;
use cicada_store::testing::TestDatabase;
use cicada_store::{
    Delta, Endpoint, EndpointDelta, NewRun, RunFilter, RunFinish, RunStatus, Store,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::transport::{Channel, Endpoint as GrpcEndpoint};

use cicada_store::both_databases;

both_databases!(
    answers_equal_the_local_queries,
    errors_keep_their_codes_and_variants
);

const START_S: i64 = 1_700_000_000;
const TOKEN: &str = "history-token";

/// A finished run of 10 seconds from two workers: second `t` has 100
/// requests of `base + t` ms per endpoint from each, and `t + 1` users on
/// worker 1, 2 on worker 2.
async fn seed(store: &Arc<dyn Store>, id: &str, started_offset_s: i64, base_ms: u64) {
    let endpoint = |index, name: &str| Endpoint {
        index,
        method: "GET".to_owned(),
        name: name.to_owned(),
    };
    store
        .create_run(&NewRun {
            checks: Default::default(),
            id: id.to_owned(),
            scenario_name: "shop".to_owned(),
            scenario_yaml: "name: shop\n".to_owned(),
            host: "http://h".to_owned(),
            config_json: "{}".to_owned(),
            labels: BTreeMap::from([("release".to_owned(), id.to_owned())]),
            started_at_ms: (START_S + started_offset_s) * 1000,
            endpoints: vec![endpoint(0, "/items"), endpoint(1, "/cart")],
            thresholds: Vec::new(),
        })
        .await
        .unwrap();
    for t in 0..10u64 {
        for (worker, users) in [("w1", t as u32 + 1), ("w2", 2)] {
            let endpoints = (0..2)
                .map(|endpoint| {
                    let mut histogram = LatencyHistogram::new();
                    histogram.record_n_us((base_ms + t + u64::from(endpoint)) * 1000, 100);
                    EndpointDelta {
                        checks: Default::default(),
                        endpoint,
                        counts: Counts {
                            requests: 100,
                            failures: endpoint.into(),
                            cancelled: 0,
                            bytes: 0,
                        },
                        histogram,
                        uncorrected: None,
                        failures: Vec::new(),
                    }
                })
                .collect();
            store
                .apply_delta(&Delta {
                    run_id: id.to_owned(),
                    worker_id: worker.to_owned(),
                    seq: t + 1,
                    second: START_S + started_offset_s + t as i64,
                    active_users: users,
                    dropped: 0,
                    endpoints,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let finish = RunFinish {
        status: RunStatus::Finished,
        ended_at_ms: (START_S + started_offset_s + 10) * 1000,
        error: None,
        lost_workers: Vec::new(),
    };
    store.finish_run(id, &finish).await.unwrap();
}

struct Collector {
    channel: Channel,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Collector {
    /// A collector requiring [`TOKEN`] on `db`, with runs `a` (fast) and
    /// `b` (100 ms slower, started later) stored.
    async fn start(db: &TestDatabase) -> Self {
        let store = db.connect().await.unwrap();
        seed(&store, "a", 0, 100).await;
        seed(&store, "b", 100, 200).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = CollectorConfig {
            database_url: db.url().to_owned(),
            token: Some(Token::new(TOKEN).unwrap()),
            ..CollectorConfig::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cicada_collector::run(config, listener, async {
            let _ = stopped.await;
        }));
        // Bounded: the port is bound, the store may still be migrating.
        let mut attempts = 0;
        let channel = loop {
            match GrpcEndpoint::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
            {
                Ok(channel) => break channel,
                Err(error) => {
                    attempts += 1;
                    assert!(attempts < 100, "collector never answered: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        Self {
            channel,
            store,
            stop: Some(stop),
            task,
        }
    }

    fn client(&self, token: Option<&str>) -> HistoryClient {
        let token = token.map(|t| Token::new(t).unwrap());
        HistoryClient::new(AttachToken::new(token.as_ref()).wrap(self.channel.clone()))
    }

    /// The generated client, to send what the wrapper's types cannot.
    fn raw(&self) -> pb::history_client::HistoryClient<cicada_proto::auth::AuthChannel> {
        let token = Token::new(TOKEN).unwrap();
        pb::history_client::HistoryClient::new(
            AttachToken::new(Some(&token)).wrap(self.channel.clone()),
        )
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn answers_equal_the_local_queries(db: TestDatabase) {
    let collector = Collector::start(&db).await;
    let client = collector.client(Some(TOKEN));
    let store = &*collector.store;

    let all = RunFilter {
        limit: 10,
        ..RunFilter::default()
    };
    let runs = client.search(&all).await.unwrap();
    assert_eq!(runs, cicada_history::search(store, &all).await.unwrap());
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"], "newest first");
    let by_label = RunFilter {
        label: Some(("release".to_owned(), "a".to_owned())),
        status: Some(RunStatus::Finished),
        scenario_name: Some("shop".to_owned()),
        ..all.clone()
    };
    let found = client.search(&by_label).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "a");

    for window in [
        Window::default(),
        Window::new(Some(2), Some(5)).unwrap(),
        Window::new(Some(7), None).unwrap(),
    ] {
        let remote = client.show("a", window).await.unwrap();
        assert_eq!(
            remote,
            cicada_history::show(store, "a", window).await.unwrap()
        );
        // Users are summed over both workers: (t + 1) + 2.
        let users: Vec<(i64, u64)> = remote.series.iter().map(|p| (p.t_s, p.users)).collect();
        let expected: Vec<(i64, u64)> = remote
            .series
            .iter()
            .map(|p| (p.t_s, p.t_s as u64 + 3))
            .collect();
        assert_eq!(users, expected);
        assert!(!users.is_empty());

        let remote = client
            .compare("a", "b", window, Tolerance(0.05))
            .await
            .unwrap();
        let local = cicada_history::compare(store, "a", "b", window, Tolerance(0.05))
            .await
            .unwrap();
        assert_eq!(remote, local);
        assert!(remote.regression, "B is 100 ms slower");
    }
    let whole = client.show("a", Window::default()).await.unwrap();
    assert_eq!(
        whole.total.requests,
        2 * 2 * 10 * 100,
        "2 workers x 2 endpoints x 10 s x 100"
    );
    assert_eq!(whole.series.len(), 10);

    let baseline = client.baseline("b").await.unwrap();
    assert_eq!(
        baseline.id,
        cicada_history::latest_passing_baseline(store, "b")
            .await
            .unwrap()
    );
    assert_eq!(baseline.id, "a");

    for (metric, endpoint) in [
        (Metric::P95, None),
        (Metric::FailureRate, Some("GET /cart")),
        (Metric::Rps, Some("GET /none")),
    ] {
        let remote = client.trend("shop", metric, endpoint, 30).await.unwrap();
        let local = cicada_history::trend(store, "shop", metric, endpoint, 30)
            .await
            .unwrap();
        assert_eq!(remote, local);
        assert_eq!(remote.points.len(), 2);
    }

    let labelled = client.label("b", "env", Some("ci")).await.unwrap();
    assert_eq!(labelled.labels.get("env").map(String::as_str), Some("ci"));
    assert_eq!(
        labelled.labels.get("release").map(String::as_str),
        Some("b")
    );
    let ci = RunFilter {
        label: Some(("env".to_owned(), "ci".to_owned())),
        ..all.clone()
    };
    let labelled = client.search(&ci).await.unwrap();
    assert_eq!(labelled.len(), 1);
    assert_eq!(
        labelled[0].labels.get("env").map(String::as_str),
        Some("ci")
    );
    assert_eq!(
        store
            .get_run("b")
            .await
            .unwrap()
            .unwrap()
            .labels
            .get("env")
            .map(String::as_str),
        Some("ci")
    );
    let unlabelled = client.label("b", "env", None).await.unwrap();
    assert_eq!(
        unlabelled,
        cicada_history::search(store, &all).await.unwrap()[0]
    );
    assert!(client.search(&ci).await.unwrap().is_empty());

    client.delete("a").await.unwrap();
    assert!(store.get_run("a").await.unwrap().is_none());
    assert!(matches!(
        client.show("a", Window::default()).await,
        Err(HistoryError::NotFound(id)) if id == "a"
    ));
    collector.stop().await;
}

async fn errors_keep_their_codes_and_variants(db: TestDatabase) {
    let collector = Collector::start(&db).await;

    // Without the token (or with a wrong one) nothing answers.
    for token in [None, Some("wrong-token")] {
        let error = collector
            .client(token)
            .search(&RunFilter::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                HistoryError::Remote {
                    code: Code::Unauthenticated,
                    ..
                }
            ),
            "{error:?}"
        );
        let error = collector
            .client(token)
            .show("a", Window::default())
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            HistoryError::Remote {
                code: Code::Unauthenticated,
                ..
            }
        ));
    }

    let client = collector.client(Some(TOKEN));
    let store = &*collector.store;
    // Unknown runs: NOT_FOUND, the same variant and message as locally.
    let remote = client.show("nope", Window::default()).await.unwrap_err();
    let local = cicada_history::show(store, "nope", Window::default())
        .await
        .unwrap_err();
    assert!(matches!(&remote, HistoryError::NotFound(id) if id == "nope"));
    assert_eq!(remote.to_string(), local.to_string());
    for result in [
        client
            .compare("a", "nope", Window::default(), Tolerance::default())
            .await
            .map(|_| ()),
        client.baseline("nope").await.map(|_| ()),
        client.label("nope", "k", Some("v")).await.map(|_| ()),
        client.label("nope", "k", None).await.map(|_| ()),
        client.delete("nope").await,
    ] {
        assert!(
            matches!(result, Err(HistoryError::NotFound(ref id)) if id == "nope"),
            "{result:?}"
        );
    }
    // No passing run before the first one.
    let remote = client.baseline("a").await.unwrap_err();
    let local = cicada_history::latest_passing_baseline(store, "a")
        .await
        .unwrap_err();
    assert!(
        matches!(remote, HistoryError::NoBaseline { .. }),
        "{remote:?}"
    );
    assert_eq!(remote.to_string(), local.to_string());

    let mut raw = collector.raw();
    let code = |result: Result<tonic::Response<_>, tonic::Status>| {
        let status = result.map(|_: tonic::Response<()>| ()).unwrap_err();
        (status.code(), status.message().to_owned())
    };
    let (c, m) = code(
        raw.show_run(pb::ShowRunRequest {
            run_id: "nope".into(),
            window: None,
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!((c, m.as_str()), (Code::NotFound, "run nope not found"));
    // An empty window, an unknown metric, a bad tolerance, empty ids:
    // INVALID_ARGUMENT, saying what is allowed.
    let empty = Some(pb::HistoryWindow {
        from_s: 5,
        to_s: Some(5),
    });
    let (c, m) = code(
        raw.show_run(pb::ShowRunRequest {
            run_id: "a".into(),
            window: empty,
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("--to must be after --from"), "{m}");
    let (c, m) = code(
        raw.compare_runs(pb::CompareRunsRequest {
            run_a: "a".into(),
            run_b: "b".into(),
            window: empty,
            tolerance: None,
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument, "{m}");
    let (c, m) = code(
        raw.trend(pb::TrendRequest {
            scenario_name: "shop".into(),
            metric: "p42".into(),
            endpoint: String::new(),
            last: 0,
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(
        m.contains("unknown metric \"p42\"; allowed: requests"),
        "{m}"
    );
    let (c, m) = code(
        raw.compare_runs(pb::CompareRunsRequest {
            run_a: "a".into(),
            run_b: "b".into(),
            window: None,
            tolerance: Some(-1.0),
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("fraction >= 0"), "{m}");
    let (c, m) = code(
        raw.delete_run(pb::DeleteRunRequest {
            run_id: String::new(),
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("run_id is empty"), "{m}");
    let (c, _) = code(
        raw.search_runs(pb::SearchRunsRequest {
            status: "done".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument);
    let (c, m) = code(
        raw.label_run(pb::LabelRunRequest {
            run_id: "a".into(),
            key: "a=b".into(),
            value: Some("v".into()),
        })
        .await
        .map(|r| r.map(|_| ())),
    );
    assert_eq!(c, Code::InvalidArgument, "{m}");
    // The wrapper reports the same as Invalid.
    assert!(matches!(
        client
            .show(
                "a",
                Window {
                    from_s: 5,
                    to_s: Some(5)
                }
            )
            .await,
        Err(HistoryError::Invalid(_))
    ));
    // Nothing changed.
    assert_eq!(client.search(&RunFilter::default()).await.unwrap().len(), 2);

    // Health lists the History service, without a token.
    let status = HealthClient::new(collector.channel.clone())
        .check(HealthCheckRequest {
            service: "cicada.v1.History".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, health_check_response::ServingStatus::Serving);
    collector.stop().await;
}
