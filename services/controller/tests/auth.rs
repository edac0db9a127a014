//! The shared token and grpc.health.v1 on a real controller over loopback:
//! health answers SERVING without a token, every cicada call needs it.

use cicada_controller::ControllerConfig;
use cicada_proto::auth::{AttachToken, Token};
use cicada_proto::health::{HealthCheckRequest, HealthClient, health_check_response};
use cicada_proto::v1::ListWorkersRequest;
use cicada_proto::v1::controller_client::ControllerClient;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};

async fn start(token: Option<&str>) -> (Channel, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Never dialled: no run is started.
    let mut config = ControllerConfig::new("http://127.0.0.1:9");
    config.token = token.map(|t| Token::new(t).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cicada_controller::run(config, listener, async {
        let _ = stopped.await;
    }));
    let channel = Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    (channel, stop)
}

async fn list_workers(channel: &Channel, token: Option<&str>) -> Result<(), tonic::Status> {
    let token = token.map(|t| Token::new(t).unwrap());
    let mut client = ControllerClient::new(AttachToken::new(token.as_ref()).wrap(channel.clone()));
    client.list_workers(ListWorkersRequest {}).await.map(|_| ())
}

async fn health(channel: &Channel, service: &str) -> health_check_response::ServingStatus {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status()
}

#[tokio::test]
async fn a_controller_with_a_token_rejects_other_callers_but_answers_health() {
    let (channel, _stop) = start(Some("right-token")).await;
    let missing = list_workers(&channel, None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert!(missing.message().contains("missing token"), "{missing:?}");
    let wrong = list_workers(&channel, Some("wrong-token"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    assert!(wrong.message().contains("wrong token"), "{wrong:?}");
    list_workers(&channel, Some("right-token")).await.unwrap();

    let serving = health_check_response::ServingStatus::Serving;
    assert_eq!(health(&channel, "").await, serving);
    assert_eq!(health(&channel, "cicada.v1.Controller").await, serving);
}

#[tokio::test]
async fn a_controller_without_a_token_accepts_everyone() {
    let (channel, _stop) = start(None).await;
    list_workers(&channel, None).await.unwrap();
    list_workers(&channel, Some("any")).await.unwrap();
    assert_eq!(
        health(&channel, "").await,
        health_check_response::ServingStatus::Serving
    );
}
