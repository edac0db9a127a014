//! Configuration errors of the sample target.

/// A flag or config value the target cannot use; the message says what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "unknown route {0:?}: expected one of `GET /`, `POST /login`, `POST /metrics`, `GET /Test/V1`..`GET /Test/V4`, `GET /health`"
    )]
    UnknownRoute(String),
    #[error(
        "invalid latency {spec:?}: {reason} (expected `20ms`, `uniform:10ms..30ms`, `normal:20ms,5ms` or `exp:20ms`)"
    )]
    InvalidLatency { spec: String, reason: String },
    #[error("invalid error rate {0}: expected a fraction between 0 and 1")]
    InvalidErrorRate(String),
    #[error("invalid per-route setting {0:?}: expected `ROUTE=VALUE`, e.g. `POST /login=50ms`")]
    InvalidRouteSetting(String),
    #[error("invalid TLS settings: {0}")]
    Tls(String),
}
