//! `cicada run`: everything in this process.

use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::local::LocalCluster;
use crate::session;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let yaml = super::read_scenario(&args.load)?;
    let workers = match args.workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
    };
    let cluster = LocalCluster::start(&args.database_url, workers).await?;
    let outcome = async {
        let mut client = session::connect(&cluster.controller_url, None).await?;
        let (run_id, workers) =
            session::start(&mut client, session::start_request(&args.load, yaml)).await?;
        eprintln!(
            "run {run_id} started on {workers} local workers; stored in {}",
            args.database_url
        );
        session::follow(&mut client, &run_id).await
    }
    .await;
    let stopped = cluster.shutdown().await;
    let progress = outcome?;
    let code = super::finish(&progress, &args.load)?;
    stopped?;
    Ok(code)
}
