//! Crash injection for the fault tests (docs/RELIABILITY.md): with
//! `CICADA_FAULT=POINT:N` in its environment, the process aborts (no
//! unwinding, no clean-up: what SIGKILL does) the N-th time it reaches
//! `POINT`. Points: `apply_delta.before_commit` (a delta's transaction is
//! open, its rows written) and `apply_delta.after_commit` (committed, not
//! yet acknowledged). Without the variable a point is one relaxed load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

struct Fault {
    point: String,
    at: u64,
    hits: AtomicU64,
}

fn configured() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            let value = std::env::var("CICADA_FAULT").ok()?;
            let (point, at) = value.rsplit_once(':')?;
            Some(Fault {
                point: point.to_owned(),
                at: at.parse().ok()?,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if `CICADA_FAULT` names this point and this is its
/// N-th hit.
pub(crate) fn point(name: &str) {
    if let Some(fault) = configured()
        && fault.point == name
        && fault.hits.fetch_add(1, Ordering::Relaxed) + 1 == fault.at
    {
        tracing::error!(point = name, "CICADA_FAULT: aborting the process");
        std::process::abort();
    }
}
