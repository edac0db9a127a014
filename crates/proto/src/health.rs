//! `grpc.health.v1` for cicada's servers: Kubernetes `grpc:` probes and
//! `cicada health --grpc` ask it. It is served next to the cicada service,
//! outside the token check, and reports SERVING for the server as a whole
//! ("") and for each named cicada service.

use tonic::server::NamedService;
pub use tonic_health::ServingStatus;
pub use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
pub use tonic_health::pb::{HealthCheckRequest, health_check_response};
pub use tonic_health::server::HealthReporter;

/// The health service, reporting `S` (and the whole server) as SERVING.
pub async fn serving<S: NamedService>() -> HealthServer<impl Health> {
    serving_all(&[S::NAME]).await
}

/// The health service, reporting each of `services` (full names such as
/// `cicada.v1.Collector`) and the whole server as SERVING.
pub async fn serving_all(services: &[&str]) -> HealthServer<impl Health> {
    serving_with_reporter(services).await.1
}

/// [`serving_all`], with the reporter that changes the statuses later
/// (the collector turns NOT_SERVING while its database cannot be written).
pub async fn serving_with_reporter(
    services: &[&str],
) -> (
    tonic_health::server::HealthReporter,
    HealthServer<impl Health>,
) {
    let (reporter, service) = tonic_health::server::health_reporter();
    for name in services {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    (reporter, service)
}
