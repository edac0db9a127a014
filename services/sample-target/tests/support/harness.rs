//! A sample target on an ephemeral loopback port and a tiny hyper client.

use std::net::SocketAddr;

use bytes::Bytes;
use cicada_sample_target::{StatsSnapshot, TargetConfig};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running target.
pub struct Target {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Target {
    pub async fn start(config: TargetConfig) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(cicada_sample_target::run(config, listener, async {
            let _ = stop.await;
        }));
        Target {
            addr,
            shutdown,
            task,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Reads `/stats` on a fresh connection.
    pub async fn stats(&self) -> StatsSnapshot {
        let (status, body) = self.client().await.get("/stats").await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(self) {
        self.shutdown.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        Client { sender }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, Bytes) {
        self.send(Method::GET, path, Bytes::new()).await
    }

    pub async fn post_form(&mut self, path: &str, form: &str) -> (StatusCode, Bytes) {
        self.send(Method::POST, path, Bytes::copy_from_slice(form.as_bytes()))
            .await
    }

    pub async fn send(&mut self, method: Method, path: &str, body: Bytes) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(body))
            .unwrap();
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }
}
