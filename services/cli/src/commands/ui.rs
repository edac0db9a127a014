//! `cicada ui`: a local cluster with the web UI, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cicada_controller::web::{self, WebConfig};

use crate::cli::UiArgs;
use crate::local::LocalCluster;

pub async fn ui(args: UiArgs) -> anyhow::Result<ExitCode> {
    // Everything is checked before a port is bound.
    let workers = super::local_workers(args.workers)?;
    let config = WebConfig {
        auth: args.web_auth,
        scenarios_dir: scenarios_dir(args.scenarios),
    };
    config.validate().context("bad --scenarios")?;
    web::check_listen(args.web_listen, &config, None, args.insecure_no_auth)?;
    let listener = tokio::net::TcpListener::bind(args.web_listen)
        .await
        .with_context(|| format!("failed to bind the web UI to {}", args.web_listen))?;
    let address = listener
        .local_addr()
        .context("failed to read the web UI address")?;
    let scenarios = match &config.scenarios_dir {
        Some(dir) => format!("scenarios from {}", dir.display()),
        None => "no scenarios directory (--scenarios DIR); paste or upload YAML".to_owned(),
    };
    let allow = cicada_scenario::allow::AllowList::new(args.allow_target.clone());
    let cluster =
        LocalCluster::start_with(&args.database_url, workers, Some((config, listener)), allow)
            .await?;
    eprintln!(
        "{workers} local workers; {scenarios}; runs stored in {}",
        args.database_url
    );
    eprintln!("web UI: http://{address}");
    eprintln!("press Ctrl-C to stop");
    cicada_telemetry::shutdown_signal().await;
    eprintln!("stopping (a live run is stopped and stored)");
    cluster.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// `--scenarios`, else `./examples` when it exists, else none (the form
/// then takes pasted or uploaded YAML only). Never the current directory:
/// it may hold YAML with secrets (compose files, manifests).
fn scenarios_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let examples = Path::new("examples");
        examples.is_dir().then(|| examples.to_owned())
    })
}
