//! The accept loop of every cicada server: TCP accept, then (with TLS) the
//! handshake in its own task, bounded by [`HANDSHAKE_TIMEOUT`], so a slow or
//! broken client never delays the next accept.

use std::io;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::ServerTls;
use crate::server::error_chain;
use crate::stream::MaybeTls;

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections waiting for the server to take them.
const BACKLOG: usize = 64;

/// An accepted connection, plaintext or TLS.
pub type Conn = MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>;

/// Connections of `listener` (TLS-terminated when `tls` is given), as the
/// stream `serve_with_incoming_shutdown` takes. The accept loop runs in its
/// own task and ends (closing the listener) when the stream is dropped.
/// The stream never yields an error: failed accepts and handshakes are
/// logged and skipped.
pub fn incoming(listener: TcpListener, tls: Option<ServerTls>) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(accept_loop(listener, tls, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<ServerTls>,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: back off instead of
                    // spinning.
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = &tls else {
            if tx.send(Ok(MaybeTls::Plain(stream))).await.is_err() {
                return;
            }
            continue;
        };
        let acceptor = TlsAcceptor::from(tls.config());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(MaybeTls::Tls(Box::new(stream)))).await;
                }
                // Plaintext clients on a TLS port end up here too (their
                // first bytes are not a TLS record).
                Ok(Err(error)) => tracing::info!(
                    %peer,
                    error = %error_chain(&error),
                    "tls handshake failed (a plaintext client, an untrusted certificate or a missing client certificate)"
                ),
                Err(_) => tracing::info!(%peer, "tls handshake timed out"),
            }
        });
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            MaybeTls::Plain(stream) => stream.connect_info(),
            MaybeTls::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}
