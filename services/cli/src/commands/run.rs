//! `cicada run`: everything in this process.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use cicada_controller::runs::RunPlan;
use cicada_controller::web::live::{LiveRun, Parts};
use cicada_controller::web::report::{Report, render_html};
use cicada_proto::v1::RunProgress;

use crate::cli::RunArgs;
use crate::local::LocalCluster;
use crate::session;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let submission = super::read_scenario(&args.load)?;
    // The local workers read `{{ env.NAME }}` from this process: a missing
    // one fails here, before anything starts.
    let missing: Vec<String> = submission
        .env
        .iter()
        .filter(|env| std::env::var_os(&env.name).is_none())
        .map(|env| format!("{} (line {}, column {})", env.name, env.line, env.column))
        .collect();
    if !missing.is_empty() {
        return Err(anyhow::anyhow!(
            "{}: environment variable{} not set: {}; the scenario reads {} with {{{{ env.NAME }}}}",
            args.load.scenario.display(),
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
        ));
    }
    let yaml = submission.yaml.clone();
    if let Some(path) = &args.html {
        check_writable(path)?;
    }
    let workers = super::local_workers(args.workers)?;
    let allow = cicada_scenario::allow::AllowList::new(args.allow_target.clone());
    let cluster = LocalCluster::start(&args.database_url, workers, allow).await?;
    let outcome = async {
        let mut client = session::connect(&cluster.controller_url, None).await?;
        let (run_id, workers) =
            session::start(&mut client, session::start_request(&args.load, submission)).await?;
        eprintln!(
            "run {run_id} started on {workers} local workers; stored in {}",
            args.database_url
        );
        session::follow(&mut client, &run_id).await
    }
    .await;
    let stopped = cluster.shutdown().await;
    let progress = outcome?;
    if let Some(path) = &args.html {
        write_html(&args, &yaml, &progress, path).await?;
    }
    let code = super::finish(&progress, &args.load)?;
    stopped?;
    Ok(code)
}

/// Fails before the run when the report could not be written afterwards.
fn check_writable(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    anyhow::ensure!(
        parent.is_dir(),
        "--html {}: the directory {} does not exist",
        path.display(),
        parent.display()
    );
    Ok(())
}

/// Writes the self-contained HTML report of the finished run: its stored
/// detail (with the per-second series) and its final statistics.
async fn write_html(
    args: &RunArgs,
    yaml: &str,
    progress: &RunProgress,
    path: &Path,
) -> anyhow::Result<()> {
    let store = cicada_store::connect(&args.database_url)
        .await
        .with_context(|| format!("failed to open the run database {}", args.database_url))?;
    let detail = cicada_history::show(&*store, &progress.run_id, cicada_history::Window::default())
        .await
        .with_context(|| format!("failed to read run {} back", progress.run_id))?;
    let scenario_host = cicada_scenario::Scenario::parse("scenario", yaml)
        .ok()
        .and_then(|scenario| scenario.host().map(str::to_owned));
    let stats = progress.stats.clone().unwrap_or_default();
    let plan = RunPlan {
        scenario_name: stats.scenario_name.clone(),
        host: args
            .load
            .host
            .clone()
            .or(scenario_host)
            .unwrap_or_else(|| detail.run.host.clone()),
        started_at_ms: stats.started_at_ms,
        run_time_ms: args.load.run_time.map(|d| d.as_millis() as u64),
    };
    let report = Report {
        run: Some(detail),
        stats: LiveRun::new(Parts::from_progress(progress, plan)),
    };
    let html = render_html(&report).context("failed to encode the report")?;
    std::fs::write(path, html)
        .with_context(|| format!("failed to write the HTML report to {}", path.display()))?;
    eprintln!("HTML report written to {}", path.display());
    Ok(())
}
