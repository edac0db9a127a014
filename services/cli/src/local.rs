//! The one-process cluster behind `cicada run`: a collector, a controller and
//! N workers, each started through its service's public entry point on a
//! loopback ephemeral port and talking real gRPC, exactly as in a cluster.

use std::time::Duration;

use anyhow::{Context, bail};
use cicada_controller::web::WebConfig;
use cicada_proto::v1::ListWorkersRequest;
use cicada_scenario::allow::AllowList;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the local workers get to register before `cicada run` gives up.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// A running local cluster.
pub struct LocalCluster {
    pub controller_url: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

/// A future that resolves once `shutdown` flips to true.
async fn shutdown_signal(mut receiver: watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}

async fn bind_loopback(what: &str) -> anyhow::Result<(TcpListener, String)> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("failed to bind a loopback port for the {what}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

impl LocalCluster {
    /// Opens the store, starts the services and waits until every worker has
    /// registered with the controller, whose runs must target a host in
    /// `allow` (`cicada run --allow-target`; empty: any host).
    pub async fn start(database_url: &str, workers: u32, allow: AllowList) -> anyhow::Result<Self> {
        Self::launch(database_url, workers, None, allow).await
    }

    /// [`LocalCluster::start`] with the controller's web UI on `web` (its
    /// settings and an already-bound listener) when given.
    pub async fn start_with(
        database_url: &str,
        workers: u32,
        web: Option<(WebConfig, TcpListener)>,
        allow: AllowList,
    ) -> anyhow::Result<Self> {
        Self::launch(database_url, workers, web, allow).await
    }

    async fn launch(
        database_url: &str,
        workers: u32,
        web: Option<(WebConfig, TcpListener)>,
        allow: AllowList,
    ) -> anyhow::Result<Self> {
        let store = cicada_store::connect(database_url)
            .await
            .with_context(|| format!("failed to open the run database {database_url}"))?;
        // OTLP export of the in-process collector, per the OTLP environment
        // variables (off without OTEL_EXPORTER_OTLP_ENDPOINT).
        let otlp = cicada_collector::OtlpConfig::from_env(None, None, Vec::new())
            .map_err(anyhow::Error::msg)?;
        let (shutdown, receiver) = watch::channel(false);
        let mut tasks = Vec::new();

        let (listener, collector_url) = bind_loopback("collector").await?;
        tasks.push((
            "collector",
            tokio::spawn(cicada_collector::serve_with(
                store,
                cicada_collector::ServeOptions {
                    otlp,
                    ..Default::default()
                },
                listener,
                shutdown_signal(receiver.clone()),
            )),
        ));

        let (listener, controller_url) = bind_loopback("controller").await?;
        let mut config = cicada_controller::ControllerConfig::new(collector_url);
        config.allow_targets = allow;
        let web_listener = web.map(|(web, listener)| {
            config.web = web;
            listener
        });
        tasks.push((
            "controller",
            tokio::spawn(cicada_controller::run_with(
                config,
                listener,
                web_listener,
                shutdown_signal(receiver.clone()),
            )),
        ));

        for index in 0..workers {
            let mut config = cicada_worker::WorkerConfig::new(controller_url.clone());
            config.worker_id = format!("local-{index}");
            config.cores = 1;
            config.engine.threads = 1;
            tasks.push((
                "worker",
                tokio::spawn(cicada_worker::run(
                    config,
                    shutdown_signal(receiver.clone()),
                )),
            ));
        }

        let cluster = Self {
            controller_url,
            shutdown,
            tasks,
        };
        cluster.wait_for_workers(workers).await?;
        Ok(cluster)
    }

    async fn wait_for_workers(&self, expected: u32) -> anyhow::Result<()> {
        let mut client = crate::session::connect(&self.controller_url, None).await?;
        let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
        loop {
            let connected = client
                .list_workers(ListWorkersRequest {})
                .await
                .context("failed to list the local workers")?
                .into_inner()
                .workers
                .len() as u32;
            if connected >= expected {
                return Ok(());
            }
            if let Some((name, task)) = self.tasks.iter().find(|(_, task)| task.is_finished()) {
                bail!("the local {name} stopped while starting ({task:?})");
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "only {connected} of {expected} local workers registered within {REGISTER_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every service and reports the first one that failed.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for (name, task) in self.tasks {
            let result = match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(Ok(result)) => result.with_context(|| format!("the local {name} failed")),
                Ok(Err(join)) => Err(anyhow::anyhow!("the local {name} panicked: {join}")),
                Err(_) => Err(anyhow::anyhow!("the local {name} did not stop within 10 s")),
            };
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
