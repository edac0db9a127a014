//! Logging setup shared by every binary: `--log-format text|json`
//! (`CICADA_LOG_FORMAT`), the filter from `RUST_LOG` (else the binary's
//! default level), lines on stderr.
//!
//! `text` is tracing-subscriber's human format. `json` ([`json`]) is one
//! JSON object per line for log collectors such as Cloud Logging, which maps
//! `severity`, `message` and `timestamp` and keeps the rest as the entry's
//! payload, so `jsonPayload.run_id="..."` finds every line of a run.

mod json;

use tracing_subscriber::EnvFilter;

pub use json::{JsonFields, JsonFormat};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing-subscriber's default format).
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339), `severity`
    /// (Cloud Logging's DEBUG, INFO, WARNING, ERROR), `message`, `target`,
    /// the fields of the event and of its enclosing spans, `span`.
    Json,
}

/// The logging flags, flattened into each binary's arguments
/// (`#[command(flatten)]`).
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct LogArgs {
    /// Log line format: `text` for people, `json` for log collectors (one
    /// object per line with severity, message, timestamp and fields such as
    /// run_id). The level comes from RUST_LOG.
    #[arg(
        long,
        env = "CICADA_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
}

/// Installs the global subscriber: `format` lines on stderr, filtered by
/// `RUST_LOG` when it is set and valid, else by `default_filter` (e.g.
/// `"info"`). Call once, first thing after parsing the arguments.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields)
            .event_format(JsonFormat)
            .init(),
    }
}
