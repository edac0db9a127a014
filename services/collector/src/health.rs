//! The collector's health follows its database: `grpc.health.v1` answers
//! NOT_SERVING (for the server and `cicada.v1.Collector`) while the store
//! cannot be reached, SERVING again once it answers. A probe checks every
//! second; a failed write flips it at once, so a load balancer or
//! Kubernetes readiness probe stops sending work to a collector that can
//! only refuse it. Workers keep their deltas and retry meanwhile.

use std::sync::Arc;
use std::time::Duration;

use cicada_proto::health::{HealthReporter, ServingStatus};
use cicada_store::Store;
use tokio::sync::Notify;

/// How often the store is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Lets the ingestion path report a failed write to the health task.
#[derive(Clone, Default)]
pub(crate) struct WriteFailures(Arc<Notify>);

impl WriteFailures {
    /// A write failed for a reason that may pass (database down or busy).
    pub(crate) fn failed(&self) {
        self.0.notify_one();
    }
}

/// Probes `store` until `shutdown` and sets `services` (and the server) to
/// SERVING or NOT_SERVING accordingly.
pub(crate) async fn follow_store(
    store: Arc<dyn Store>,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    failures: WriteFailures,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut serving = true;
    loop {
        let probe = tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await;
        let ok = matches!(probe, Ok(Ok(())));
        if ok != serving {
            serving = ok;
            let status = if ok {
                tracing::info!("database reachable again: health SERVING");
                ServingStatus::Serving
            } else {
                let error = match probe {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {PROBE_TIMEOUT:?}"),
                };
                tracing::error!(%error, "database unreachable: health NOT_SERVING; deltas are refused (workers keep and resend them)");
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            for name in &services {
                reporter.set_service_status(*name, status).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_EVERY) => {}
            () = failures.0.notified(), if serving => {}
            () = &mut shutdown => return,
        }
    }
}
