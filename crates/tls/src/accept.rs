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

use crate::server::error_chain;
use crate::stream::MaybeTls;
use crate::{Alpn, ServerTls};

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
        let alpn = tls.alpn();
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = async {
                if !starts_with_tls(&stream).await {
                    refuse_plaintext(stream, peer, alpn).await;
                    return None;
                }
                Some(acceptor.accept(stream).await)
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(None) => {}
                Ok(Some(Ok(stream))) => {
                    let _ = tx.send(Ok(MaybeTls::Tls(Box::new(stream)))).await;
                }
                Ok(Some(Err(error))) => tracing::info!(
                    %peer,
                    error = %error_chain(&error),
                    "tls handshake failed (an untrusted or missing certificate on either side?)"
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

/// True when the client's first byte opens a TLS handshake record (0x16);
/// false for plaintext (or a client that closed without a byte).
async fn starts_with_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// Answers a plaintext client on a TLS port: HTTP/1 clients (curl, a
/// browser) get a 400 that says to use https://; gRPC clients see the
/// connection closed (their CLI/worker errors carry the hint).
async fn refuse_plaintext(mut stream: TcpStream, peer: std::net::SocketAddr, alpn: Alpn) {
    use tokio::io::AsyncWriteExt;
    tracing::warn!(%peer, "plaintext connection on a tls port: the client must use an https:// url and trust this server's CA");
    if alpn == Alpn::Http1 {
        let body = "this port serves HTTPS: use an https:// url\n";
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}
