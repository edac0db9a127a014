//! Command-line definitions. Every flag can also be set through a `CICADA_*`
//! environment variable; a flag wins over the variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cicada",
    version,
    about = "Distributed load testing with exact numbers"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(flatten)]
    pub log: cicada_telemetry::LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test on this machine: collector, controller and workers in
    /// one process, the run stored in a local database.
    Run(RunArgs),
    /// Start a run on a deployed controller and follow it.
    Start(StartArgs),
    /// Stop a running run on a deployed controller.
    Stop(StopArgs),
    /// Change the users of a running run on a deployed controller.
    Scale(ScaleArgs),
    /// List the workers connected to a deployed controller.
    Workers(ControllerArgs),
    /// The web UI on a local cluster (collector, controller, workers in this
    /// process), like `locust -f FILE`: start, watch and steer runs in the
    /// browser; runs until Ctrl-C.
    Ui(UiArgs),
    /// Check a scenario file without running it.
    Validate(ValidateArgs),
    /// Ask a controller or collector whether it is serving (grpc.health.v1,
    /// no token needed): exit 0 when SERVING, 1 otherwise. For container
    /// healthchecks.
    Health(HealthArgs),
    /// Stored runs: list, show, label, delete.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Compare run B with baseline run A per endpoint and in total; exit
    /// code 3 when B regressed beyond --tolerance.
    Compare(CompareArgs),
    /// One metric across the latest finished runs of a scenario.
    Trend(TrendArgs),
}

/// Where history commands read: the local database or a deployed collector.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The database `cicada run` writes: a SQLite file path or URL, or postgres://...
    #[arg(long, env = "CICADA_DATABASE_URL", default_value = "./cicada.db")]
    pub database_url: String,
    /// A deployed collector's history API over HTTP/JSON (its --http-listen
    /// address), e.g. http://127.0.0.1:7101; replaces --database-url.
    #[arg(long, env = "CICADA_COLLECTOR")]
    pub collector: Option<String>,
    /// A deployed collector's gRPC port (its --listen address, serving
    /// cicada.v1.History), HOST:PORT or http://HOST:PORT, e.g.
    /// http://127.0.0.1:7100; replaces --database-url.
    #[arg(long, env = "CICADA_COLLECTOR_GRPC", conflicts_with = "collector")]
    pub collector_grpc: Option<String>,
    #[command(flatten)]
    pub auth: TokenArgs,
    /// TLS towards an https:// collector (both ports).
    #[command(flatten)]
    pub tls: cicada_tls::ClientTlsArgs,
}

/// Output format of history commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The part of a run to report, in seconds since it started.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Only seconds from this offset on (e.g. 60s), to exclude ramp-up.
    #[arg(long, value_parser = parse_run_time)]
    pub from: Option<Duration>,
    /// Only seconds before this offset (e.g. 300s).
    #[arg(long, value_parser = parse_run_time)]
    pub to: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Stored runs, newest first.
    List(RunsListArgs),
    /// A run: configuration, scenario, thresholds, per-endpoint numbers and
    /// the per-second series.
    Show(RunsShowArgs),
    /// Set (key=value) or remove (--remove key) a label of a run.
    Label(RunsLabelArgs),
    /// Delete a finished run and everything stored with it.
    Delete(RunsDeleteArgs),
    /// Build the rollup (per-minute and per-10-second rows) that makes
    /// windows (--from/--to) fast, for runs that ended before cicada wrote
    /// it, or one of its levels, at finish.
    Rollup(RunsRollupArgs),
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// Only runs of this scenario (its `name:`).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Only runs with this label: --label env=staging
    #[arg(long, value_parser = parse_label)]
    pub label: Option<(String, String)>,
    /// Only runs in this state: running, finished or failed.
    #[arg(long, value_parser = ["running", "finished", "failed"])]
    pub status: Option<String>,
    /// Only runs started within this long before now (e.g. 24h, 7d).
    #[arg(long, value_parser = parse_run_time)]
    pub since: Option<Duration>,
    /// Only runs started before this Unix time in milliseconds (the next
    /// page: pass the value printed after a full page).
    #[arg(long)]
    pub before: Option<i64>,
    /// Page size.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct RunsShowArgs {
    pub run_id: String,
    #[command(flatten)]
    pub window: WindowArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct RunsLabelArgs {
    pub run_id: String,
    /// The label to set.
    #[arg(value_parser = parse_label, required_unless_present = "remove")]
    pub label: Option<(String, String)>,
    /// The label key to remove instead.
    #[arg(long, conflicts_with = "label")]
    pub remove: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct RunsDeleteArgs {
    pub run_id: String,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct RunsRollupArgs {
    /// The runs to roll up.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub run_ids: Vec<String>,
    /// Every ended run (those with a complete rollup are left as they are).
    #[arg(long)]
    pub all: bool,
    /// The database: a SQLite file path or URL, or postgres://...
    #[arg(long, env = "CICADA_DATABASE_URL", default_value = "./cicada.db")]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline run A (or, with --baseline, the run to check).
    pub run_a: String,
    /// The run B compared with A.
    #[arg(conflicts_with = "baseline", required_unless_present = "baseline")]
    pub run_b: Option<String>,
    /// Compare RUN with the latest passing run of its scenario started
    /// before it (finished without error, every threshold passed).
    #[arg(long, value_parser = ["latest-passing"])]
    pub baseline: Option<String>,
    /// How much worse B's latency percentiles (p50..p99.9) and failure rate
    /// may be than A's before it is a regression: 5% or 0.05.
    #[arg(long, default_value = "5%", value_parser = parse_tolerance)]
    pub tolerance: cicada_history::Tolerance,
    #[command(flatten)]
    pub window: WindowArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct TrendArgs {
    /// The scenario (its `name:`).
    pub scenario: String,
    /// requests, rps, failure_rate, p50, p90, p95, p99, p99.9 or max.
    #[arg(long, default_value = "p95", value_parser = parse_metric)]
    pub metric: cicada_history::Metric,
    /// One endpoint, `METHOD NAME` (e.g. "GET /items"); all together by default.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// How many of the latest finished runs.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub last: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub source: SourceArgs,
}

fn parse_tolerance(text: &str) -> Result<cicada_history::Tolerance, String> {
    text.parse()
        .map_err(|error: cicada_history::HistoryError| error.to_string())
}

fn parse_metric(text: &str) -> Result<cicada_history::Metric, String> {
    text.parse()
        .map_err(|error: cicada_history::HistoryError| error.to_string())
}

/// The load flags shared by `run` and `start` (named like Locust's).
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Base URL of the system under test; overrides the scenario's `host`.
    #[arg(short = 'H', long, env = "CICADA_HOST")]
    pub host: Option<String>,
    /// Peak number of concurrent users, across all workers.
    #[arg(short = 'u', long, env = "CICADA_USERS", default_value_t = 1)]
    pub users: u32,
    /// Users started per second, across all workers.
    #[arg(short = 'r', long, env = "CICADA_SPAWN_RATE", default_value_t = 1.0)]
    pub spawn_rate: f64,
    /// Open model: start iterations at this total rate whatever the response
    /// times (100000/s, 6000/m, or a number per second); -u and -r are then
    /// not used. Overrides the scenario's `rate:`.
    #[arg(long, env = "CICADA_RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Open model: most iterations in flight at once across all workers; an
    /// iteration due beyond it is dropped and counted (default: the scenario's
    /// `max_in_flight:`, else one second's worth of the rate).
    #[arg(long, env = "CICADA_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: Option<u32>,
    /// Stop after this long (e.g. 30s, 5m, 1h30m; a bare number is seconds).
    /// Without it the run goes on until Ctrl-C.
    #[arg(short = 't', long, env = "CICADA_RUN_TIME", value_parser = parse_run_time)]
    pub run_time: Option<Duration>,
    /// How long in-flight requests may finish when the run stops before they
    /// are cancelled (and counted as cancelled).
    #[arg(long, env = "CICADA_STOP_TIMEOUT", value_parser = parse_run_time, default_value = "10s")]
    pub stop_timeout: Duration,
    /// A stage of the load shape, DURATION:USERS or DURATION:RATE
    /// (repeatable, in order): --stage 2m:10000 --stage 5m:10000 --stage 1m:0
    /// ramps users linearly to each target, --stage 1m:50000/s a rate (the
    /// open model); replaces the scenario's `stages`.
    #[arg(long = "stage", value_parser = parse_stage)]
    pub stages: Vec<StageArg>,
    /// Label the run (repeatable): --label env=staging --label release=1.4.2
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Write the final numbers as JSON to this file.
    #[arg(long, env = "CICADA_SUMMARY_JSON")]
    pub summary_json: Option<PathBuf>,
    /// Write JUnit XML to this file: one test case per threshold, per check
    /// and for the run's completeness, for CI test reports.
    #[arg(long, env = "CICADA_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Pass/fail threshold (repeatable), added to the scenario's: "p95<150ms",
    /// "POST /metrics: p99<500ms", optionally ending in " abort_on_fail" or
    /// " abort_on_fail=30s". Any failing threshold makes the exit code 99.
    #[arg(long = "threshold", value_parser = parse_threshold)]
    pub thresholds: Vec<String>,
    /// PromQL giving the target's CPU in cores, sampled each second of the
    /// run by the collector (instant query) and stored with it, e.g.
    /// 'sum(rate(container_cpu_usage_seconds_total{namespace="shop"}[1m]))';
    /// the summary then reports target CPU-seconds and requests per target
    /// CPU-second. Needs --prometheus-url.
    #[arg(long, env = "CICADA_TARGET_CPU_QUERY", requires = "prometheus_url")]
    pub target_cpu_query: Option<String>,
    /// Prometheus-compatible HTTP API (http://host:9090) the collector
    /// queries for --target-cpu-query.
    #[arg(long, env = "CICADA_PROMETHEUS_URL", requires = "target_cpu_query")]
    pub prometheus_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Local workers to start (default: one per core).
    #[arg(long, env = "CICADA_WORKERS")]
    pub workers: Option<u32>,
    /// Where the run is stored: a SQLite file path or URL (sqlite:...), or postgres://...
    #[arg(long, env = "CICADA_DATABASE_URL", default_value = "./cicada.db")]
    pub database_url: String,
    /// After the run, write the self-contained HTML report (the web UI's
    /// report page, no network needed to open it) to this file.
    #[arg(long, env = "CICADA_HTML")]
    pub html: Option<PathBuf>,
    /// Refuse to run unless the host matches one of these (repeatable; the
    /// env var takes a comma-separated list): shop.example.com, host:port,
    /// *.example.com, an IP, IP:port or a CIDR block. Default: any host.
    #[arg(long = "allow-target", env = "CICADA_ALLOW_TARGET", value_delimiter = ',', value_parser = cicada_scenario::allow::TargetPattern::parse)]
    pub allow_target: Vec<cicada_scenario::allow::TargetPattern>,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address of the web UI (port 0: any free port, printed at start).
    #[arg(long, env = "CICADA_WEB_LISTEN", default_value = "127.0.0.1:8089")]
    pub web_listen: std::net::SocketAddr,
    /// HTTP Basic credentials USER:PASS the browser must give; required for a
    /// non-loopback --web-listen unless --insecure-no-auth.
    #[arg(long, env = "CICADA_WEB_AUTH", hide_env_values = true)]
    pub web_auth: Option<cicada_controller::web::BasicAuth>,
    /// Serve a non-loopback --web-listen without a login (trusted networks only).
    #[arg(long, env = "CICADA_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,
    /// Directory of scenario files (*.yaml, *.yml) offered by the start form
    /// (default: ./examples when it exists, else none: paste or upload YAML).
    #[arg(long, env = "CICADA_SCENARIOS")]
    pub scenarios: Option<PathBuf>,
    /// Local workers to start (default: one per core).
    #[arg(long, env = "CICADA_WORKERS")]
    pub workers: Option<u32>,
    /// Where runs are stored: a SQLite file path or URL (sqlite:...), or postgres://...
    #[arg(long, env = "CICADA_DATABASE_URL", default_value = "./cicada.db")]
    pub database_url: String,
    /// Refuse runs whose host matches none of these (as `cicada run
    /// --allow-target`; the web form shows the refusal). Default: any host.
    #[arg(long = "allow-target", env = "CICADA_ALLOW_TARGET", value_delimiter = ',', value_parser = cicada_scenario::allow::TargetPattern::parse)]
    pub allow_target: Vec<cicada_scenario::allow::TargetPattern>,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The controller's gRPC address.
    #[arg(
        long,
        env = "CICADA_CONTROLLER",
        default_value = "http://127.0.0.1:7000"
    )]
    pub controller: String,
    #[command(flatten)]
    pub auth: TokenArgs,
    /// TLS towards an https:// controller.
    #[command(flatten)]
    pub tls: cicada_tls::ClientTlsArgs,
}

impl ControllerArgs {
    /// A client of the controller, with the token and TLS settings given.
    pub async fn connect(&self) -> anyhow::Result<crate::session::Client> {
        use anyhow::Context;
        let tls = self
            .tls
            .client()
            .context("bad --tls-ca / --tls-client-cert / --tls-client-key")?;
        crate::session::connect_with_tls(&self.controller, self.auth.token()?.as_ref(), &tls).await
    }
}

/// The shared token a deployed controller or collector requires.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Shared token the server requires (`authorization: Bearer`).
    #[arg(long, env = "CICADA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the shared token (used when --token is not given).
    #[arg(long, env = "CICADA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl TokenArgs {
    /// The token from --token or --token-file, if any.
    pub fn token(&self) -> anyhow::Result<Option<cicada_proto::auth::Token>> {
        use anyhow::Context;
        cicada_proto::auth::Token::resolve(self.token.as_deref(), self.token_file.as_deref())
            .context("bad --token / --token-file")
    }
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// gRPC address of the server: HOST:PORT, http://HOST:PORT or
    /// https://HOST:PORT.
    #[arg(long = "grpc", value_name = "ADDR")]
    pub addr: String,
    /// TLS towards an https:// server (a client certificate when it
    /// requires one).
    #[command(flatten)]
    pub tls: cicada_tls::ClientTlsArgs,
    /// Service to ask about (default: the server as a whole), e.g.
    /// cicada.v1.Controller.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up (unhealthy) after this long.
    #[arg(long, value_parser = parse_run_time, default_value = "3s")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Print the run id and return at once instead of following the run.
    #[arg(long)]
    pub detach: bool,
    /// Wait until this many workers are connected before starting.
    #[arg(long, env = "CICADA_EXPECT_WORKERS")]
    pub expect_workers: Option<u32>,
    /// How long to wait for --expect-workers before giving up.
    #[arg(long, env = "CICADA_EXPECT_WORKERS_TIMEOUT", value_parser = parse_run_time, default_value = "60s")]
    pub expect_workers_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The run to change.
    pub run_id: String,
    /// New total of concurrent users, across all workers (closed model).
    #[arg(
        short = 'u',
        long,
        required_unless_present = "rate",
        conflicts_with = "rate"
    )]
    pub users: Option<u32>,
    /// New total rate, e.g. 5000/s (open model).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Users started (or stopped) per second to get there (default: the run's spawn rate).
    #[arg(short = 'r', long)]
    pub spawn_rate: Option<f64>,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The run to stop.
    pub run_id: String,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
}

/// Parses Locust-style run times: `30s`, `5m`, `1h30m`, `1h 30m`, or a bare
/// number of seconds.
pub fn parse_run_time(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("{error}; expected a duration like 30s, 5m or 1h30m"))
}

/// One `--stage`: reach `users` or `rate` at the end of `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageArg {
    pub duration: Duration,
    pub users: u32,
    /// Iterations per second (0 for a users stage).
    pub rate: f64,
}

fn parse_stage(text: &str) -> Result<StageArg, String> {
    let (duration, target) = text.split_once(':').ok_or_else(|| {
        format!("stage {text:?} is not DURATION:USERS or DURATION:RATE, e.g. 2m:1000 or 1m:500/s")
    })?;
    let duration = parse_run_time(duration)?;
    if duration.is_zero() {
        return Err(format!("stage {text:?}: the duration must be more than 0"));
    }
    let target = target.trim();
    if target.contains('/') {
        let rate = match target.split_once('/') {
            Some((zero, _)) if zero.trim().parse::<f64>() == Ok(0.0) => 0.0,
            _ => cicada_scenario::parse_rate(target)
                .map_err(|error| format!("stage {text:?}: {error}"))?,
        };
        return Ok(StageArg {
            duration,
            users: 0,
            rate,
        });
    }
    let users = target
        .parse()
        .map_err(|_| format!("stage {text:?}: users must be a whole number >= 0"))?;
    Ok(StageArg {
        duration,
        users,
        rate: 0.0,
    })
}

fn parse_rate(text: &str) -> Result<f64, String> {
    cicada_scenario::parse_rate(text)
}

/// Checks the syntax of a `--threshold` (its endpoint is checked against the
/// scenario once it is read).
fn parse_threshold(text: &str) -> Result<String, String> {
    cicada_scenario::Threshold::parse_flag(text)
        .map(|_| text.to_owned())
        .map_err(|error| error.to_string())
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("label {text:?} is not key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collector_is_reached_over_grpc_or_http_not_both() {
        let cli = Cli::try_parse_from([
            "cicada",
            "runs",
            "list",
            "--collector-grpc",
            "127.0.0.1:7100",
        ])
        .unwrap();
        let Command::Runs(RunsCommand::List(args)) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            args.source.collector_grpc.as_deref(),
            Some("127.0.0.1:7100")
        );
        assert_eq!(args.source.collector, None);
        let error = Cli::try_parse_from([
            "cicada",
            "trend",
            "shop",
            "--collector",
            "http://127.0.0.1:7101",
            "--collector-grpc",
            "http://127.0.0.1:7100",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn run_times() {
        assert_eq!(parse_run_time("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_run_time("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_run_time("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_run_time("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_run_time("soon").unwrap_err().contains("like 30s"));
    }

    #[test]
    fn stages() {
        assert_eq!(
            parse_stage("2m:1000").unwrap(),
            StageArg {
                duration: Duration::from_secs(120),
                users: 1000,
                rate: 0.0
            }
        );
        assert_eq!(parse_stage("1m:6000/m").unwrap().rate, 100.0);
        assert_eq!(parse_stage("1m:0/s").unwrap().rate, 0.0);
        assert!(
            parse_stage("1m:fast/s")
                .unwrap_err()
                .contains("invalid rate")
        );
        assert!(parse_stage("2m").unwrap_err().contains("DURATION:USERS"));
        assert!(parse_stage("0s:5").unwrap_err().contains("more than 0"));
        assert!(parse_stage("1m:-3").unwrap_err().contains("whole number"));
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label("env=staging").unwrap(),
            ("env".to_owned(), "staging".to_owned())
        );
        assert!(parse_label("nokey").is_err());
        assert!(parse_label("=x").is_err());
    }

    #[test]
    fn thresholds_are_repeatable_and_checked() {
        let cli = Cli::try_parse_from([
            "cicada",
            "start",
            "s.yaml",
            "--threshold",
            "p95<150ms",
            "--threshold",
            "POST /metrics: p99 < 500ms abort_on_fail=30s",
        ])
        .unwrap();
        let Command::Start(args) = cli.command else {
            panic!("expected start")
        };
        assert_eq!(args.load.thresholds.len(), 2);
        let error = Cli::try_parse_from(["cicada", "run", "s.yaml", "--threshold", "p95 < 150"])
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("needs a unit"), "{error}");
    }

    #[test]
    fn locust_style_flags() {
        let cli = Cli::try_parse_from([
            "cicada",
            "run",
            "s.yaml",
            "-H",
            "http://127.0.0.1:8080",
            "-u",
            "200",
            "-r",
            "50",
            "-t",
            "30s",
            "--workers",
            "2",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.load.users, 200);
        assert_eq!(args.load.spawn_rate, 50.0);
        assert_eq!(args.load.run_time, Some(Duration::from_secs(30)));
        assert_eq!(args.workers, Some(2));
        assert_eq!(args.database_url, "./cicada.db");
        assert_eq!(args.load.rate, None);
    }

    #[test]
    fn open_model_flags() {
        let cli = Cli::try_parse_from([
            "cicada",
            "start",
            "s.yaml",
            "--rate",
            "6000/m",
            "--max-in-flight",
            "50",
        ])
        .unwrap();
        let Command::Start(args) = cli.command else {
            panic!("expected start")
        };
        assert_eq!(args.load.rate, Some(100.0));
        assert_eq!(args.load.max_in_flight, Some(50));
        assert!(Cli::try_parse_from(["cicada", "run", "s.yaml", "--rate", "0/s"]).is_err());
        assert!(Cli::try_parse_from(["cicada", "run", "s.yaml", "--max-in-flight", "0"]).is_err());
    }
}
