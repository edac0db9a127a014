//! The collector's error type and its one mapping to gRPC status codes.

use cicada_store::StoreError;

/// Errors from handling collector requests.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The collector is shutting down (retry on another one, or later).
    #[error("{0}")]
    Unavailable(String),
}

impl CollectorError {
    /// The gRPC code a client sees for this error.
    ///
    /// - unknown run: `NOT_FOUND`; run id taken: `ALREADY_EXISTS`
    /// - malformed request (endpoint out of range, undecodable histogram,
    ///   bad JSON, seq 0): `INVALID_ARGUMENT`
    /// - a delta after a gap in the worker's sequence: `OUT_OF_RANGE` (resend
    ///   the missing deltas first)
    /// - a new delta for a finished run: `FAILED_PRECONDITION` (stop sending)
    /// - database unreachable or busy: `UNAVAILABLE` (retry); other database
    ///   trouble: `INTERNAL`
    pub fn code(&self) -> tonic::Code {
        match self {
            CollectorError::InvalidArgument(_) => tonic::Code::InvalidArgument,
            CollectorError::Unavailable(_) => tonic::Code::Unavailable,
            CollectorError::Store(error) => match error {
                StoreError::NotFound(_) => tonic::Code::NotFound,
                StoreError::AlreadyExists(_) => tonic::Code::AlreadyExists,
                StoreError::Invalid(_) | StoreError::UnsupportedUrl(_) => {
                    tonic::Code::InvalidArgument
                }
                StoreError::Gap { .. } => tonic::Code::OutOfRange,
                StoreError::RunFinished(_) => tonic::Code::FailedPrecondition,
                StoreError::Corrupt(_) => tonic::Code::DataLoss,
                error if error.is_transient() => tonic::Code::Unavailable,
                StoreError::Migrate(_) | StoreError::Database(_) => tonic::Code::Internal,
            },
        }
    }
}

impl From<CollectorError> for tonic::Status {
    fn from(error: CollectorError) -> Self {
        let code = error.code();
        if code == tonic::Code::Internal || code == tonic::Code::Unavailable {
            tracing::warn!(error = %DisplayChain(&error), "collector request failed");
        }
        tonic::Status::new(code, DisplayChain(&error).to_string())
    }
}

/// Formats an error with its sources, `outer: inner: ...`.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_codes() {
        let cases = [
            (StoreError::NotFound("r".into()), tonic::Code::NotFound),
            (
                StoreError::AlreadyExists("r".into()),
                tonic::Code::AlreadyExists,
            ),
            (
                StoreError::Invalid("x".into()),
                tonic::Code::InvalidArgument,
            ),
            (
                StoreError::Gap {
                    run_id: "r".into(),
                    worker_id: "w".into(),
                    expected: 2,
                    got: 3,
                },
                tonic::Code::OutOfRange,
            ),
            (
                StoreError::RunFinished("r".into()),
                tonic::Code::FailedPrecondition,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(CollectorError::from(error).code(), code);
        }
        let status = tonic::Status::from(CollectorError::InvalidArgument("bad".into()));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "invalid argument: bad");
    }
}
