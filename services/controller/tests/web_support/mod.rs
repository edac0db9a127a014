//! A whole cluster on loopback for the web API tests, and a small HTTP/1
//! client (plain requests and server-sent events).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cicada_controller::ControllerConfig;
use cicada_controller::web::{BasicAuth, WebConfig};
use cicada_proto::auth::Token;
use cicada_store::Store;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Options {
    pub workers: u32,
    /// Share of the sample target's answers replaced by 500.
    pub error_rate: f64,
    pub web_auth: Option<String>,
    pub token: Option<String>,
    /// (file name, content) in the `--scenarios` directory.
    pub scenarios: Vec<(&'static str, &'static str)>,
}

pub struct Cluster {
    pub web_addr: String,
    /// The controller's gRPC URL.
    pub controller_url: String,
    pub target_url: String,
    store: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    target_stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

async fn flag(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|down| *down).await;
}

impl Cluster {
    pub async fn start(options: Options) -> Cluster {
        Self::start_with(options, |_| {}).await
    }

    /// A cluster whose controller settings `adjust` changes last.
    pub async fn start_with(
        options: Options,
        adjust: impl FnOnce(&mut ControllerConfig),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let scenarios = dir.path().join("scenarios");
        std::fs::create_dir(&scenarios).unwrap();
        for (name, yaml) in &options.scenarios {
            std::fs::write(scenarios.join(name), yaml).unwrap();
        }
        let store = cicada_store::connect(dir.path().join("runs.db").to_str().unwrap())
            .await
            .unwrap();
        let token = options.token.as_deref().map(|t| Token::new(t).unwrap());
        let (shutdown, receiver) = watch::channel(false);
        let mut tasks = Vec::new();

        let (listener, target_addr) = loopback().await;
        let (target_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(cicada_sample_target::run(
            cicada_sample_target::TargetConfig {
                error_rate: options.error_rate,
                seed: 7,
                ..Default::default()
            },
            listener,
            async move {
                let _ = stopped.await;
            },
        ));

        let (listener, collector_addr) = loopback().await;
        let collector = cicada_collector::serve_with(
            store.clone(),
            cicada_collector::ServeOptions {
                token: token.clone(),
                ..Default::default()
            },
            listener,
            flag(receiver.clone()),
        );
        tasks.push(tokio::spawn(async move { collector.await.unwrap() }));

        let (listener, controller_addr) = loopback().await;
        let (web_listener, web_addr) = loopback().await;
        let mut config = ControllerConfig::new(format!("http://{collector_addr}"));
        config.token = token.clone();
        config.progress_interval = Duration::from_millis(500);
        config.web = WebConfig {
            auth: options
                .web_auth
                .as_deref()
                .map(|auth| auth.parse::<BasicAuth>().unwrap()),
            scenarios_dir: (!options.scenarios.is_empty()).then_some(scenarios),
        };
        config.web.validate().unwrap();
        adjust(&mut config);
        let controller = cicada_controller::run_with(
            config,
            listener,
            Some(web_listener),
            flag(receiver.clone()),
        );
        tasks.push(tokio::spawn(async move { controller.await.unwrap() }));

        for index in 0..options.workers {
            let mut config = cicada_worker::WorkerConfig::new(format!("http://{controller_addr}"));
            config.worker_id = format!("web-{index}");
            config.cores = 1;
            config.engine.threads = 1;
            config.token = token.clone();
            let worker = cicada_worker::run(config, flag(receiver.clone()));
            tasks.push(tokio::spawn(async move { worker.await.unwrap() }));
        }
        let cluster = Cluster {
            web_addr,
            controller_url: format!("http://{controller_addr}"),
            target_url: format!("http://{target_addr}"),
            store,
            shutdown,
            tasks,
            target_stop: Some(target_stop),
            _dir: dir,
        };
        let admin = cluster.client(
            options
                .web_auth
                .as_deref()
                .map(|auth| auth.parse::<BasicAuth>().unwrap().header())
                .or(options.token.map(|t| format!("Bearer {t}"))),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let status = admin.get("/api/status").await.json();
            if status["workers"].as_u64() == Some(u64::from(options.workers)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "workers did not register: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster
    }

    pub fn client(&self, authorization: Option<String>) -> Client {
        Client {
            addr: self.web_addr.clone(),
            authorization,
        }
    }

    /// Responses the sample target produced, by its own count.
    pub async fn target_total(&self) -> u64 {
        let client = Client {
            addr: self.target_url.trim_start_matches("http://").to_owned(),
            authorization: None,
        };
        client.get("/stats").await.json()["total"].as_u64().unwrap()
    }

    /// Requests in the run's stored per-endpoint summaries.
    /// Requests in the run's stored summaries (not its connection rows).
    pub async fn stored_requests(&self, run_id: &str) -> u64 {
        let endpoints = self.store.endpoints(run_id).await.unwrap();
        self.store
            .summaries(run_id)
            .await
            .unwrap()
            .iter()
            .filter(|summary| {
                endpoints
                    .iter()
                    .any(|e| e.index == summary.endpoint && e.is_request())
            })
            .map(|summary| summary.counts.requests)
            .sum()
    }

    /// Follows a run's events to its `end` event and returns its data.
    pub async fn run_end(&self, client: &Client, run_id: &str) -> serde_json::Value {
        let mut events = client.events(&format!("/api/runs/{run_id}/events")).await;
        loop {
            let (name, data) = events
                .next(Duration::from_secs(30))
                .await
                .expect("events until the end");
            if name == "end" {
                return data;
            }
        }
    }

    /// Stops every service; each must end cleanly and in time.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("a service did not stop within 15 s")
                .expect("a service failed");
        }
        if let Some(stop) = self.target_stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

pub struct Client {
    addr: String,
    authorization: Option<String>,
}

impl Client {
    async fn send(&self, method: &str, path: &str, body: String) -> hyper::Response<Incoming> {
        self.send_with(method, path, &[], body).await
    }

    /// A request with extra headers (they replace the defaults: `host`,
    /// `content-type`).
    async fn send_with(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: String,
    ) -> hyper::Response<Incoming> {
        let stream = TcpStream::connect(&self.addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr);
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        let mut request = request.body(Full::new(Bytes::from(body))).unwrap();
        for (name, value) in extra {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        tokio::time::timeout(Duration::from_secs(20), sender.send_request(request))
            .await
            .expect("no answer within 20 s")
            .unwrap()
    }

    async fn read(response: hyper::Response<Incoming>) -> Response {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(20), response.into_body().collect())
            .await
            .expect("body within 20 s")
            .unwrap()
            .to_bytes();
        Response {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        Self::read(self.send("GET", path, String::new()).await).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Response {
        Self::read(self.send("POST", path, body.to_string()).await).await
    }

    /// Any request, with extra headers replacing the defaults.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        Self::read(self.send_with(method, path, headers, body.to_owned()).await).await
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> Response {
        Self::read(self.send("POST", path, body.to_owned()).await).await
    }

    /// Opens a server-sent event stream (asserting 200 and its type).
    pub async fn events(&self, path: &str) -> Events {
        let response = self.send("GET", path, String::new()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/event-stream"
        );
        Events {
            body: response.into_body(),
            buffer: String::new(),
        }
    }
}

pub struct Events {
    body: Incoming,
    buffer: String,
}

impl Events {
    /// The next `(event, data)`; `None` when the stream ended.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, serde_json::Value)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("no event in time");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                Some(Err(error)) => panic!("event stream failed: {error}"),
                None => return None,
            }
        }
    }
}
