//! The shared token and grpc.health.v1 on a real collector (SQLite) over
//! loopback: health answers SERVING without a token, every cicada call
//! needs it.

use cicada_collector::CollectorConfig;
use cicada_proto::auth::{AttachToken, Token};
use cicada_proto::health::{HealthCheckRequest, HealthClient, health_check_response};
use cicada_proto::v1::ListRunsRequest;
use cicada_proto::v1::collector_client::CollectorClient;
use cicada_store::testing::TestDatabase;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

async fn list_runs(channel: &Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    let token = token.map(|t| Token::new(t).unwrap());
    let mut client = CollectorClient::new(AttachToken::new(token.as_ref()).wrap(channel.clone()));
    client
        .list_runs(ListRunsRequest::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_collector_with_a_token_rejects_other_callers_but_answers_health() {
    let db = TestDatabase::sqlite().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = CollectorConfig {
        database_url: db.url().to_owned(),
        token: Some(Token::new("right-token").unwrap()),
        ..CollectorConfig::default()
    };
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cicada_collector::run(config, listener, async {
        let _ = stopped.await;
    }));
    // The store opens (migrations) before the port answers: retry briefly.
    let mut attempts = 0;
    let channel = loop {
        match Endpoint::from_shared(url.clone()).unwrap().connect().await {
            Ok(channel) => break channel,
            Err(error) => {
                attempts += 1;
                assert!(attempts < 100, "collector never answered: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };

    let missing = list_runs(&channel, None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    let wrong = list_runs(&channel, Some("wrong-token")).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    list_runs(&channel, Some("right-token")).await.unwrap();

    for service in ["", "cicada.v1.Collector"] {
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .expect("health check without a token")
            .into_inner()
            .status();
        assert_eq!(
            status,
            health_check_response::ServingStatus::Serving,
            "{service:?}"
        );
    }
}
