//! The accept loop: one hyper connection task per socket, HTTP/1.1 with
//! keep-alive or HTTP/2 with prior knowledge (h2c, told apart by the
//! connection preface), and a graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::service::{self, State};

/// Accepts connections until `shutdown` resolves, then asks every connection
/// to finish its in-flight request and waits up to `grace` for them.
pub(crate) async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all
    // of them are gone.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection(
                    stream,
                    tls.clone(),
                    Arc::clone(&state),
                    Arc::clone(&builder),
                    stop_rx.clone(),
                    done_tx.clone(),
                ));
            }
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%error, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    // Fails only if no connection is left to listen, which is fine.
    let _ = stop_tx.send(true);
    drop(done_tx);
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        tracing::warn!(?grace, "connections still open after the grace period");
    }
}

async fn connection(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "failed to set TCP_NODELAY");
    }
    let Some(tls) = tls else {
        return serve_connection(stream, state, builder, stop, done).await;
    };
    match tls.accept(stream).await {
        Ok(stream) => {
            state
                .stats
                .tls_handshake(stream.get_ref().1.peer_certificates());
            serve_connection(stream, state, builder, stop, done).await;
        }
        Err(error) => {
            state.stats.tls_failure();
            tracing::debug!(%error, "TLS handshake failed");
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    state: Arc<State>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stop: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| service::handle(Arc::clone(&state), req));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        // The sender dropping (serve itself dropped) also means stop.
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        // Clients resetting connections is routine under load.
        tracing::debug!(%error, "connection ended with an error");
    }
}
