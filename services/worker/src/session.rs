//! The worker's connection to the controller: dial with backoff (forever,
//! until shutdown, so a restarted controller gets its workers back),
//! register, heartbeat, and dispatch `StartWork` / `StopWork`.

use std::sync::Arc;
use std::time::Duration;

use cicada_proto::auth::AttachToken;
use cicada_proto::v1::controller_client::ControllerClient;
use cicada_proto::v1::controller_message::Msg as In;
use cicada_proto::v1::worker_message::Msg as Out;
use cicada_proto::v1::{Register, WorkerMessage};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::backoff::Backoff;
use crate::procstat::{self, CpuSampler};
use crate::state::Node;

/// Errors of one controller session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("invalid controller url: {0}")]
    Url(#[source] cicada_tls::TlsError),
    // The chain names the cause (refused, tls handshake, ...): tonic's own
    // message is only "transport error".
    #[error("failed to connect to the controller: {}", cicada_tls::server::error_chain(.0))]
    Connect(tonic::transport::Error),
    #[error("controller refused the session: {0}")]
    Refused(#[source] Box<tonic::Status>),
    #[error("controller stream failed: {0}")]
    Stream(#[source] Box<tonic::Status>),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Keeps a session with the controller until `closing` turns true.
pub(crate) async fn maintain(node: Arc<Node>, mut closing: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), node.config.reconnect_max);
    loop {
        if *closing.borrow() {
            return;
        }
        match session(&node, &mut closing).await {
            Ok(()) => {
                tracing::info!("controller session ended");
                backoff.reset();
            }
            Err(error) => tracing::warn!(%error, "controller session failed"),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = closing.wait_for(|&closing| closing) => return,
        }
    }
}

/// One session: returns `Ok` when it ended after a successful registration.
async fn session(
    node: &Arc<Node>,
    closing: &mut watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let config = &node.config;
    let channel = cicada_tls::GrpcTarget::new(&config.controller_url, &config.tls)
        .map_err(SessionError::Url)?
        .with(|endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(20))
        })
        .connect()
        .await
        .map_err(SessionError::Connect)?;
    let mut client = ControllerClient::new(AttachToken::new(config.token.as_ref()).wrap(channel))
        // A StartWork carries the scenario's data files.
        .max_decoding_message_size(cicada_proto::MAX_RUN_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel(32);
    let register = Register {
        worker_id: config.worker_id.clone(),
        cores: config.cores,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: config.hostname.clone(),
    };
    tx.try_send(WorkerMessage {
        msg: Some(Out::Register(register)),
    })
    .map_err(|_| SessionError::Protocol("failed to queue Register".into()))?;
    let mut inbound = client
        .worker_session(ReceiverStream::new(rx))
        .await
        .map_err(|status| SessionError::Refused(Box::new(status)))?
        .into_inner();
    let first = inbound
        .message()
        .await
        .map_err(|status| SessionError::Stream(Box::new(status)))?;
    let heartbeat_every = match first.and_then(|message| message.msg) {
        Some(In::Registered(registered)) => {
            Duration::from_millis(u64::from(registered.heartbeat_interval_ms).max(100))
        }
        other => {
            return Err(SessionError::Protocol(format!(
                "expected Registered, got {other:?}"
            )));
        }
    };
    tracing::info!(worker_id = %config.worker_id, controller = %config.controller_url, "registered with the controller");
    node.set_outbound(Some(tx));

    let result = serve(node, &mut inbound, heartbeat_every, closing).await;
    node.set_outbound(None);
    result
}

/// Share of its cores above which a worker warns that it is the bottleneck
/// (Locust warns at 90% too).
const SATURATED_CPU_PERCENT: f64 = 90.0;

/// Logs (at most every 10 s) that this worker's CPU is saturated: its
/// numbers then measure its own queueing, not the target.
fn warn_if_saturated(node: &Node, cpu_percent: f64, warned_at: &mut Option<tokio::time::Instant>) {
    let share = cpu_percent / f64::from(node.config.cores.max(1));
    let quiet = warned_at.is_some_and(|at| at.elapsed() < Duration::from_secs(10));
    if share > SATURATED_CPU_PERCENT && !quiet {
        tracing::warn!(
            cpu_percent = share,
            cores = node.config.cores,
            "worker CPU above {SATURATED_CPU_PERCENT}%: the load generator is saturated; add workers"
        );
        *warned_at = Some(tokio::time::Instant::now());
    }
}

async fn serve(
    node: &Arc<Node>,
    inbound: &mut tonic::Streaming<cicada_proto::v1::ControllerMessage>,
    heartbeat_every: Duration,
    closing: &mut watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let mut cpu = CpuSampler::default();
    let mut warned_at: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(heartbeat_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let cpu_percent = cpu.sample();
                warn_if_saturated(node, cpu_percent, &mut warned_at);
                let heartbeat = node.heartbeat(cpu_percent, procstat::rss_bytes());
                if !node.send_heartbeat(heartbeat) {
                    tracing::debug!("heartbeat not sent (stream full or closed)");
                }
            }
            message = inbound.message() => match message {
                Ok(Some(message)) => match message.msg {
                    Some(In::StartWork(start)) => {
                        tracing::info!(run_id = %start.run_id, "StartWork received");
                        node.start_work(start);
                    }
                    Some(In::StopWork(stop)) => {
                        tracing::info!(run_id = %stop.run_id, grace_ms = stop.grace_ms, "StopWork received");
                        node.stop_work(stop);
                    }
                    Some(In::ChangeWork(change)) => node.change_work(change),
                    Some(In::Registered(_)) | None => {}
                },
                Ok(None) => return Ok(()),
                Err(status) => return Err(SessionError::Stream(Box::new(status))),
            },
            _ = closing.wait_for(|&closing| closing) => return Ok(()),
        }
    }
}
