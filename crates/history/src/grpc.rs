//! Run history over the `cicada.v1.History` gRPC service: the same queries
//! as the functions of this crate, answered by a collector.
//!
//! - `convert`: these types to and from their protocol messages, and the
//!   checks of a request's arguments (window, tolerance, metric, limits).
//! - `client`: [`HistoryClient`], the service behind the same signatures as
//!   the local functions, for any crate holding an [`AuthChannel`](cicada_proto::auth::AuthChannel).
//! - here: [`status`] and [`error`], the one mapping of [`HistoryError`] to
//!   a gRPC status and back. The variant travels as a `google.rpc.ErrorInfo`
//!   detail (reason and its fields), so a remote caller gets the same
//!   variant, with the same message, as a local one.

mod client;
mod convert;

use std::collections::HashMap;

use cicada_store::StoreError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::HistoryError;

pub use client::HistoryClient;
pub use convert::{
    DEFAULT_SEARCH_LIMIT, DEFAULT_TREND_LAST, MAX_LIMIT, endpoint_of, filter_of, last_of,
    metric_of, run_id_of, search_request, tolerance_of, window_of,
};

/// `ErrorInfo.domain` of the History service's errors.
pub const ERROR_DOMAIN: &str = "history.cicada.v1";

const NOT_FOUND: &str = "RUN_NOT_FOUND";
const NO_BASELINE: &str = "NO_BASELINE";
const INVALID: &str = "INVALID_ARGUMENT";

/// The gRPC status a History server answers for `error`:
///
/// - unknown run, no passing baseline: `NOT_FOUND`
/// - bad argument (window, tolerance, metric, label key, deleting a running
///   run): `INVALID_ARGUMENT`
/// - database unreachable or busy: `UNAVAILABLE` (retry)
/// - other store trouble: `INTERNAL`
pub fn status(error: &HistoryError) -> tonic::Status {
    let message = error.to_string();
    let info = |reason: &str, fields: &[(&str, &str)]| {
        let metadata: HashMap<String, String> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata)
    };
    match error {
        HistoryError::NotFound(run_id) | HistoryError::Store(StoreError::NotFound(run_id)) => {
            tonic::Status::with_error_details(
                Code::NotFound,
                message,
                info(NOT_FOUND, &[("run_id", run_id)]),
            )
        }
        HistoryError::NoBaseline { scenario, run_id } => tonic::Status::with_error_details(
            Code::NotFound,
            message,
            info(NO_BASELINE, &[("scenario", scenario), ("run_id", run_id)]),
        ),
        HistoryError::Invalid(_) | HistoryError::Store(StoreError::Invalid(_)) => {
            tonic::Status::with_error_details(Code::InvalidArgument, message, info(INVALID, &[]))
        }
        HistoryError::Store(store) if store.is_transient() => {
            tonic::Status::new(Code::Unavailable, message)
        }
        HistoryError::Store(_) => tonic::Status::new(Code::Internal, message),
        HistoryError::Remote { code, message } => tonic::Status::new(*code, message.clone()),
    }
}

/// The [`HistoryError`] a History server's status stands for; statuses
/// without a History `ErrorInfo` (unreachable server, interceptor, another
/// server) become [`HistoryError::Remote`].
pub fn error(status: tonic::Status) -> HistoryError {
    let remote = |status: &tonic::Status| HistoryError::Remote {
        code: status.code(),
        message: status.message().to_owned(),
    };
    let Some(info) = status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN)
    else {
        return remote(&status);
    };
    let field = |name: &str| info.metadata.get(name).cloned();
    match (status.code(), info.reason.as_str()) {
        (Code::NotFound, NOT_FOUND) => match field("run_id") {
            Some(run_id) => HistoryError::NotFound(run_id),
            None => remote(&status),
        },
        (Code::NotFound, NO_BASELINE) => match (field("scenario"), field("run_id")) {
            (Some(scenario), Some(run_id)) => HistoryError::NoBaseline { scenario, run_id },
            _ => remote(&status),
        },
        (Code::InvalidArgument, INVALID) => HistoryError::Invalid(status.message().to_owned()),
        _ => remote(&status),
    }
}

#[cfg(test)]
mod tests;
