//! The controller's error domain and its one mapping to gRPC status codes.

use cicada_scenario::ScenarioError;
use tonic::{Code, Status};

/// Everything a controller RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The request is malformed (zero users, negative spawn rate, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The scenario does not parse; the message carries file:line:column.
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// Neither the request nor the scenario names a host.
    #[error("no host: set `host` in the scenario or pass one with the run")]
    NoHost,
    /// The run's host is outside the controller's `--allow-target` list
    /// (or could not be resolved to check it).
    #[error("{0}")]
    TargetNotAllowed(String),
    /// No idle worker is connected.
    #[error("no idle worker is connected")]
    NoWorkers,
    /// `expect_workers` were not connected in time.
    #[error("only {connected} of the {expected} expected workers connected within {waited_s} s")]
    TooFewWorkers {
        connected: usize,
        expected: u32,
        waited_s: u64,
    },
    /// Another run is still going (one run at a time).
    #[error("run {0} is still running")]
    RunActive(String),
    /// The run id is unknown (or was forgotten).
    #[error("run {0} not found")]
    RunNotFound(String),
    /// A worker's stream broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A call to the collector failed.
    #[error("collector {call} failed: {status}")]
    Collector {
        call: &'static str,
        status: Box<Status>,
    },
    /// The controller is shutting down.
    #[error("controller is shutting down")]
    ShuttingDown,
}

impl ControllerError {
    /// The gRPC code a client sees for this error.
    pub fn code(&self) -> Code {
        match self {
            ControllerError::InvalidArgument(_)
            | ControllerError::Scenario(_)
            | ControllerError::NoHost
            | ControllerError::Protocol(_) => Code::InvalidArgument,
            ControllerError::NoWorkers
            | ControllerError::TooFewWorkers { .. }
            | ControllerError::RunActive(_) => Code::FailedPrecondition,
            ControllerError::RunNotFound(_) => Code::NotFound,
            ControllerError::TargetNotAllowed(_) => Code::PermissionDenied,
            ControllerError::Collector { .. } | ControllerError::ShuttingDown => Code::Unavailable,
        }
    }

    /// Wraps a failed collector call.
    pub(crate) fn collector(call: &'static str, status: Status) -> Self {
        ControllerError::Collector {
            call,
            status: Box::new(status),
        }
    }
}

impl From<ControllerError> for Status {
    fn from(error: ControllerError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            Status::from(ControllerError::NoWorkers).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(ControllerError::RunNotFound("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(ControllerError::TargetNotAllowed("x".into())).code(),
            Code::PermissionDenied
        );
        let scenario = ScenarioError {
            source_name: "a.yaml".into(),
            line: 3,
            column: 7,
            message: "unknown field".into(),
        };
        let status = Status::from(ControllerError::from(scenario));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("a.yaml:3:7"));
        assert_eq!(
            Status::from(ControllerError::collector(
                "CreateRun",
                Status::unavailable("down")
            ))
            .code(),
            Code::Unavailable
        );
    }
}
