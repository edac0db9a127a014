//! The `cicada.v1` wire protocol: messages and tonic clients/servers generated
//! from `proto/cicada/v1/cicada.proto` at build time, plus what every cicada
//! server and client shares around them: the shared-token check ([`auth`])
//! and `grpc.health.v1` ([`health`]).
//!
//! Every service and message is re-exported from [`v1`].

pub mod auth;
pub mod health;

/// Version 1 of the protocol.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("cicada.v1");
}

pub use v1::*;

/// Largest message a `StartRun` or `StartWork` may be: it carries the
/// scenario's data files (at most 64 MiB together) plus the scenario.
pub const MAX_RUN_MESSAGE_BYTES: usize = 80 << 20;

/// Largest message the collector decodes or sends (a batch of deltas with
/// histograms, a run's live stats with every failure kind, a history
/// answer); its clients accept answers up to this size too.
pub const MAX_COLLECTOR_MESSAGE_BYTES: usize = 64 << 20;
