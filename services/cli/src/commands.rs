//! One function per subcommand.

mod health;
mod history;
mod run;
mod start;
mod ui;
mod validate;

use std::fmt;
use std::process::ExitCode;

use anyhow::Context;
use cicada_proto::v1::{
    ListWorkersRequest, RunProgress, RunState, ScaleRunRequest, StopRunRequest,
};

use crate::cli::{Command, LoadArgs};
use crate::{report, session};

pub async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Start(args) => start::start(args).await,
        Command::Ui(args) => ui::ui(args).await,
        Command::Validate(args) => validate::validate(args),
        Command::Runs(command) => history::runs(command).await,
        Command::Compare(args) => history::compare(args).await,
        Command::Trend(args) => history::trend(args).await,
        Command::Health(args) => health::health(args).await,
        Command::Stop(args) => {
            let mut client = args.controller.connect().await?;
            client
                .stop_run(StopRunRequest {
                    run_id: args.run_id.clone(),
                })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))
                .with_context(|| format!("failed to stop run {}", args.run_id))?;
            eprintln!("stopping run {}", args.run_id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scale(args) => {
            let mut client = args.controller.connect().await?;
            client
                .scale_run(ScaleRunRequest {
                    run_id: args.run_id.clone(),
                    users: args.users,
                    rate: args.rate,
                    spawn_rate: args.spawn_rate.unwrap_or(0.0),
                })
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))
                .with_context(|| format!("failed to scale run {}", args.run_id))?;
            match (args.users, args.rate) {
                (Some(users), _) => eprintln!("run {}: moving to {users} users", args.run_id),
                (None, Some(rate)) => eprintln!("run {}: moving to {rate}/s", args.run_id),
                (None, None) => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Workers(args) => {
            let mut client = args.connect().await?;
            let workers = client
                .list_workers(ListWorkersRequest {})
                .await
                .map_err(|status| anyhow::anyhow!("{}", status.message()))
                .context("failed to list workers")?
                .into_inner()
                .workers;
            println!(
                "{:<28} {:>5} {:>7} {:>9} {:>6} {:>10} {:>10}  run",
                "worker", "cores", "users", "in-flight", "cpu%", "rss MiB", "req/CPU-s"
            );
            for w in &workers {
                // Measured over its busy heartbeats; "-" until it has been busy.
                let capacity = match w.requests_per_cpu_second {
                    c if c > 0.0 => format!("{c:.0}"),
                    _ => "-".to_owned(),
                };
                println!(
                    "{:<28} {:>5} {:>7} {:>9} {:>6.1} {:>10.1} {:>10}  {}",
                    w.worker_id,
                    w.cores,
                    w.active_users,
                    w.in_flight,
                    w.cpu_percent,
                    w.rss_bytes as f64 / (1024.0 * 1024.0),
                    capacity,
                    w.run_id
                );
            }
            eprintln!("{} workers connected", workers.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--workers`, or one local worker per core.
pub fn local_workers(flag: Option<u32>) -> anyhow::Result<u32> {
    match flag {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
    }
}

/// Exit code when the run ended but a threshold failed (as k6).
pub const EXIT_THRESHOLDS_FAILED: u8 = 99;

/// A bad command line found after clap's own checks (exit code 2, like
/// clap's errors), e.g. a `--threshold` naming an endpoint the scenario lacks.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A scenario file and the data files it names, read and checked.
pub struct Submission {
    pub yaml: String,
    pub data: Vec<cicada_proto::v1::DataFile>,
    /// The environment variables the scenario reads (`{{ env.NAME }}`).
    pub env: Vec<cicada_scenario::EnvRef>,
    /// The files of its `tls:` section (`name`: the key).
    pub tls_files: Vec<cicada_proto::v1::DataFile>,
}

/// Reads and validates a scenario file locally, with the `--threshold`
/// flags and its data files, so a bad file or flag fails fast before
/// anything starts.
pub fn read_scenario(load: &LoadArgs) -> anyhow::Result<Submission> {
    let (scenario, submission) = read_submission(&load.scenario)?;
    for text in &load.thresholds {
        cicada_scenario::Threshold::from_flag(text, scenario.endpoints()).map_err(|error| {
            UsageError(format!(
                "invalid value {text:?} for '--threshold <THRESHOLDS>': {error}"
            ))
        })?;
    }
    Ok(submission)
}

/// Reads the scenario at `path` and its data files (paths relative to the
/// scenario file's folder), each checked against the scenario; also
/// returns the rows of each data set.
pub fn read_submission(
    path: &std::path::Path,
) -> anyhow::Result<(cicada_scenario::Scenario, Submission)> {
    use cicada_scenario::data::MAX_DATA_BYTES;
    let source = path.display().to_string();
    let yaml = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read scenario file {source}"))?;
    let scenario = cicada_scenario::Scenario::parse(&source, &yaml)?;
    let folder = path.parent().unwrap_or(std::path::Path::new("."));
    let mut data = Vec::with_capacity(scenario.data().len());
    let mut total = 0usize;
    for set in scenario.data() {
        let file = folder.join(&set.file);
        let shown = file.display().to_string();
        let size = std::fs::metadata(&file)
            .with_context(|| {
                format!(
                    "{source}: data set {:?}: failed to read {shown} (paths are relative to the scenario file)",
                    set.name
                )
            })?
            .len();
        total = total.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
        if total > MAX_DATA_BYTES {
            anyhow::bail!(
                "{source}: data set {:?}: {shown} brings the run's data files to {total} bytes, over the limit of {} MiB for all of them",
                set.name,
                MAX_DATA_BYTES >> 20
            );
        }
        let content = std::fs::read(&file).with_context(|| {
            format!("{source}: data set {:?}: failed to read {shown}", set.name)
        })?;
        let table = cicada_scenario::Table::parse(set, &source, &shown, &content)?;
        eprintln!(
            "data set {}: {shown}, {} rows (pick {})",
            set.name,
            table.rows(),
            set.pick.name()
        );
        data.push(cicada_proto::v1::DataFile {
            name: set.name.clone(),
            path: shown,
            content: content.into(),
        });
    }
    let mut tls_files = Vec::new();
    for (key, name) in scenario.tls().files() {
        let file = folder.join(name);
        let shown = file.display().to_string();
        let content = std::fs::read(&file).with_context(|| {
            format!(
                "{source}: tls.{key}: failed to read {shown} (paths are relative to the scenario file)"
            )
        })?;
        if content.len() > cicada_scenario::MAX_TLS_FILE_BYTES {
            anyhow::bail!(
                "{source}: tls.{key}: {shown} is {} bytes, over the limit of {} KiB for a PEM file",
                content.len(),
                cicada_scenario::MAX_TLS_FILE_BYTES >> 10
            );
        }
        tls_files.push(cicada_proto::v1::DataFile {
            name: key.to_owned(),
            path: shown,
            content: content.into(),
        });
    }
    let env = scenario.env().to_vec();
    Ok((
        scenario,
        Submission {
            yaml,
            data,
            env,
            tls_files,
        },
    ))
}

/// Prints the final table, writes the summary JSON and picks the exit code.
pub fn finish(progress: &RunProgress, load: &LoadArgs) -> anyhow::Result<ExitCode> {
    let stats = progress.stats.clone().unwrap_or_default();
    let state = session::state_name(progress.state());
    println!("{}", report::render_table(&stats));
    if !progress.diagnoses.is_empty() {
        println!("{}", report::render_diagnoses(&progress.diagnoses));
    }
    if let Some(path) = &load.summary_json {
        let mut summary = report::summary_json(&stats, state);
        summary.stop_reason.clone_from(&progress.stop_reason);
        summary.diagnoses = progress
            .diagnoses
            .iter()
            .map(report::DiagnosisJson::from)
            .collect();
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("failed to write the summary to {}", path.display()))?;
        eprintln!("summary written to {}", path.display());
    }
    if let Some(path) = &load.junit {
        std::fs::write(path, report::junit::render(&stats))
            .with_context(|| format!("failed to write the JUnit report to {}", path.display()))?;
        eprintln!("JUnit report written to {}", path.display());
    }
    if progress.state() == RunState::Failed {
        anyhow::bail!("run {} failed: {}", progress.run_id, progress.error);
    }
    if progress.threshold_aborted {
        eprintln!("run {} stopped early: {}", progress.run_id, progress.error);
    }
    if !progress.stop_reason.is_empty() {
        eprintln!(
            "run {} stopped early: {}",
            progress.run_id, progress.stop_reason
        );
    }
    let failed = stats.thresholds.iter().filter(|t| !t.passed).count();
    if failed > 0 || progress.threshold_aborted {
        eprintln!(
            "{failed} of {} thresholds failed (exit code {EXIT_THRESHOLDS_FAILED})",
            stats.thresholds.len()
        );
        return Ok(ExitCode::from(EXIT_THRESHOLDS_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
