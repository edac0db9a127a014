//! Live figures of a run read merged from the database, for stores several
//! collectors write at once (Postgres, [`Store::shared`]): each collector
//! applies only the deltas of the workers connected to it, so its own
//! in-memory aggregate would be its share of the run. Every collector
//! answering `GetRunStats` from the database answers the whole run, whichever
//! one the controller (or a Kubernetes Service) picked.
//!
//! Cost: the seconds more than [`OPEN_SECONDS`] behind the latest stored one
//! are folded once into a kept aggregate; each read re-reads only the open
//! seconds (at most `OPEN_SECONDS` x endpoints rows), the failure rows and
//! the watermarks, so a read stays bounded however long the run is. A delta
//! for a second already folded (a worker re-sending after an outage of more
//! than `OPEN_SECONDS`) is in the database and in the final statistics, but
//! not in the live totals of this collector until it reloads the run.

use cicada_store::{Endpoint, Store, StoreError};

use crate::live::LiveAggregate;

/// Seconds behind the latest stored second that are still re-read on every
/// live read (deltas of slower workers and re-sent ones still land there).
pub(crate) const OPEN_SECONDS: i64 = 15;

/// The folded part of a run's merged live view.
#[derive(Debug)]
pub(crate) struct MergedLive {
    /// The stored seconds before `folded_until`, merged.
    folded: LiveAggregate,
    /// First second not folded (`None`: nothing folded yet).
    folded_until: Option<i64>,
}

impl MergedLive {
    /// Nothing folded yet.
    pub(crate) fn new(endpoints: &[Endpoint]) -> Self {
        Self {
            folded: LiveAggregate::new(endpoints),
            folded_until: None,
        }
    }

    /// Everything stored for the run so far, merged over every collector's
    /// deltas: the folded seconds plus the open ones, failures and evicted
    /// requests read afresh.
    pub(crate) async fn read(
        &mut self,
        store: &dyn Store,
        run_id: &str,
    ) -> Result<LiveAggregate, StoreError> {
        let rows = store.seconds(run_id, self.folded_until).await?;
        let users = store.active_users(run_id, self.folded_until).await?;
        let latest = rows
            .iter()
            .map(|row| row.second)
            .chain(users.iter().map(|users| users.second))
            .max();
        let fold_until = latest
            .map(|latest| latest - OPEN_SECONDS)
            .filter(|until| self.folded_until.is_none_or(|folded| *until > folded));
        if let Some(until) = fold_until {
            for row in rows.iter().filter(|row| row.second < until) {
                self.folded.add_row(row);
            }
            for users in users.iter().filter(|users| users.second < until) {
                self.folded.add_active_users(users);
            }
            self.folded_until = Some(until);
        }
        let open_from = self.folded_until.unwrap_or(i64::MIN);
        let mut view = self.folded.clone();
        for row in rows.iter().filter(|row| row.second >= open_from) {
            view.add_row(row);
        }
        for users in users.iter().filter(|users| users.second >= open_from) {
            view.add_active_users(users);
        }
        for failure in store.failures(run_id).await? {
            view.add_failure_record(&failure);
        }
        for mark in store.watermarks(run_id).await? {
            view.add_evicted(mark.evicted_requests);
        }
        Ok(view)
    }
}
