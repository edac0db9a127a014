//! CONTRACT PLACEHOLDER (to be replaced by the engine engineer): the API the
//! worker service compiles against. Keep these signatures.

use std::sync::Arc;
use std::time::Duration;

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_scenario::Scenario;

/// Engine tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// OS threads running users (0 = one per available core).
    pub threads: usize,
}

/// This worker's share of a run.
#[derive(Debug, Clone)]
pub struct Load {
    /// Users per user class, indexed like `Scenario::user_classes()`.
    pub class_users: Vec<u32>,
    /// Users per second to spawn at.
    pub spawn_rate: f64,
    /// Global index of this worker's first user.
    pub user_id_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
}

/// Counts of one failure kind within an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureKindCount {
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

/// What one endpoint recorded since the previous cut.
#[derive(Debug, Clone, Default)]
pub struct EndpointInterval {
    pub counts: Counts,
    pub histogram: LatencyHistogram,
    pub failures_by_kind: Vec<FailureKindCount>,
}

/// Everything recorded since the previous cut, indexed like `Scenario::endpoints()`.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub endpoints: Vec<EndpointInterval>,
}

/// A running load.
pub struct Engine {
    _scenario: Arc<Scenario>,
}

impl Engine {
    /// Starts ramping users. Must be called within a tokio runtime.
    pub fn start(
        scenario: Arc<Scenario>,
        host: &str,
        load: Load,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let _ = (scenario, host, load, config);
        unimplemented!("contract placeholder")
    }
    /// Takes everything recorded since the previous cut.
    pub fn cut(&self) -> Interval {
        unimplemented!("contract placeholder")
    }
    pub fn active_users(&self) -> u32 {
        unimplemented!("contract placeholder")
    }
    pub fn in_flight(&self) -> u64 {
        unimplemented!("contract placeholder")
    }
    /// Stops spawning, lets users finish their current request within
    /// `grace`, then cancels what is left (counted as `cancelled`). When it
    /// returns nothing is in flight and the next `cut()` holds the remainder.
    pub async fn stop(&self, grace: Duration) {
        let _ = grace;
        unimplemented!("contract placeholder")
    }
}
