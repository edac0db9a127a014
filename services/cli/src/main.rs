//! `cicada`: the command line of the cicada load tester.
//!
//! - `cicada run`: collector, controller and workers in this process, wired
//!   through real gRPC on loopback, storing the run in SQLite (or Postgres).
//! - `cicada start`: the same run against a deployed controller.
//! - `cicada stop`, `cicada workers`: steer a deployed controller.
//! - `cicada validate`: check a scenario file without running it.
//! - `cicada runs`, `cicada compare`, `cicada trend`: run history, on the
//!   local database or a deployed collector (gRPC `--collector-grpc` or HTTP
//!   `--collector`).
//!
//! Exit codes: 0 success, 1 error (bad input, setup or connection failure,
//! failed run), 2 bad command line, 3 `compare` found a regression, 99 a
//! threshold failed, 130 interrupted
//! twice.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod history_source;
mod local;
mod report;
mod session;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose, cli.log.log_format);
    match commands::dispatch(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            let usage = error.downcast_ref::<commands::UsageError>().is_some();
            std::process::ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Logs go to stderr; by default only warnings, so the progress lines stay
/// readable. `RUST_LOG` overrides.
fn init_tracing(verbose: u8, format: cicada_telemetry::LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    cicada_telemetry::logging::init(format, default);
}
