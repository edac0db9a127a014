//! A real collector on 127.0.0.1:0 over a test database, with a gRPC
//! client to it, for the collector's integration tests.

use std::time::Duration;

use cicada_collector::CollectorConfig;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A running collector; [`Collector::stop`] shuts it down and checks that
/// it ran cleanly.
pub struct Collector {
    pub client: CollectorClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Collector {
    pub async fn start(db: &TestDatabase) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let config = CollectorConfig {
            database_url: db.url().to_owned(),
            ..Default::default()
        };
        let task = tokio::spawn(cicada_collector::run(config, listener, async {
            let _ = signal.await;
        }));
        let client = CollectorClient::connect(format!("http://{address}"))
            .await
            .expect("connect to the collector");
        Self {
            client,
            shutdown: Some(shutdown),
            task,
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("collector stops")
            .unwrap()
            .expect("collector ran cleanly");
    }
}
