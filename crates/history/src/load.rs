//! Per-endpoint counts and merged histograms of a run (or of a window of
//! it), the input of every report.

use cicada_histogram::{Counts, LatencyHistogram};
use cicada_store::{Endpoint, RunRecord, RunStatus, SecondRow, Store};

use crate::{HistoryError, Window};

/// A run's endpoints with their merged numbers over the window.
pub(crate) struct Totals {
    /// `METHOD NAME`, counts and merged histogram, in endpoint order.
    pub endpoints: Vec<(String, Counts, LatencyHistogram)>,
    /// Seconds the window covers (clipped to the run's length).
    pub duration_s: f64,
}

impl Totals {
    /// All requests together (a group's row is not one).
    pub fn total(&self) -> Result<(Counts, LatencyHistogram), HistoryError> {
        let mut counts = Counts::default();
        let mut histogram = LatencyHistogram::new();
        for (name, c, h) in &self.endpoints {
            if is_request_name(name) {
                counts.add(c);
                merge(&mut histogram, h)?;
            }
        }
        Ok((counts, histogram))
    }

    /// Whether endpoint `index`'s rows are requests.
    pub fn is_request(&self, index: u32) -> bool {
        self.endpoints
            .get(index as usize)
            .is_none_or(|(name, _, _)| is_request_name(name))
    }
}

/// Whether the endpoint `METHOD NAME` is one of requests (not a group).
fn is_request_name(name: &str) -> bool {
    name.split_once(' ')
        .is_none_or(|(method, _)| cicada_store::is_request_method(method))
}

pub(crate) fn merge(
    into: &mut LatencyHistogram,
    other: &LatencyHistogram,
) -> Result<(), HistoryError> {
    into.merge(other)
        .map_err(|error| HistoryError::Invalid(format!("failed to merge histograms: {error}")))
}

/// The run with this id, or [`HistoryError::NotFound`].
pub(crate) async fn run(store: &dyn Store, run_id: &str) -> Result<RunRecord, HistoryError> {
    store
        .get_run(run_id)
        .await?
        .ok_or_else(|| HistoryError::NotFound(run_id.to_owned()))
}

/// `METHOD NAME` of an endpoint.
pub(crate) fn endpoint_name(e: &Endpoint) -> String {
    format!("{} {}", e.method, e.name)
}

/// Seconds the run has lasted (until now while it is running).
fn length_s(record: &RunRecord, now_ms: i64) -> f64 {
    let end = match record.status {
        RunStatus::Running => now_ms,
        RunStatus::Finished | RunStatus::Failed => record.ended_at_ms.unwrap_or(now_ms),
    };
    (end - record.started_at_ms).max(0) as f64 / 1000.0
}

/// The window's duration within a run of `length_s` seconds.
pub(crate) fn window_duration_s(window: Window, length_s: f64) -> f64 {
    let to = window.to_s.map_or(length_s, |to| (to as f64).min(length_s));
    (to - window.from_s as f64).max(0.0)
}

/// The window as Unix seconds `[from, to)` (its bounds are relative to the
/// second the run started in).
fn window_seconds(record: &RunRecord, window: Window) -> (i64, i64) {
    let start = record.started_at_ms.div_euclid(1000);
    let from = start.saturating_add(window.from_s as i64);
    let to = window
        .to_s
        .map_or(i64::MAX, |to| start.saturating_add(to as i64));
    (from, to)
}

/// The per-second rows of the window.
pub(crate) async fn window_rows(
    store: &dyn Store,
    record: &RunRecord,
    window: Window,
) -> Result<Vec<SecondRow>, HistoryError> {
    let (from, to) = window_seconds(record, window);
    Ok(store.seconds_between(&record.id, from, to).await?)
}

/// Merges the window into `merged`: an ended run's whole minutes and the
/// whole 10-second blocks towards the edges from its rollup, and only the
/// at most 9 seconds left at each edge from its per-second rows (the same
/// sums and histograms as merging every second, with far fewer histograms
/// to decode); every second for a running run or one without a rollup.
async fn add_window(
    store: &dyn Store,
    record: &RunRecord,
    window: Window,
    merged: &mut [(String, Counts, LatencyHistogram)],
) -> Result<(), HistoryError> {
    let (from, to) = window_seconds(record, window);
    let Some(span) = store.rollup_between(&record.id, from, to).await? else {
        for row in store.seconds_between(&record.id, from, to).await? {
            add(merged, row.endpoint, &row.counts, &row.histogram)?;
        }
        return Ok(());
    };
    for row in &span.rows {
        add(merged, row.endpoint, &row.counts, &row.histogram)?;
    }
    for (edge_from, edge_to) in [(from, span.from_second), (span.to_second, to)] {
        if edge_from < edge_to {
            for row in store
                .seconds_between(&record.id, edge_from, edge_to)
                .await?
            {
                add(merged, row.endpoint, &row.counts, &row.histogram)?;
            }
        }
    }
    Ok(())
}

/// Merged numbers per endpoint: the summaries written at finish for a
/// whole ended run (a few rows), else the window (see [`add_window`]).
pub(crate) async fn totals(
    store: &dyn Store,
    record: &RunRecord,
    window: Window,
    now_ms: i64,
) -> Result<Totals, HistoryError> {
    let endpoints = store.endpoints(&record.id).await?;
    let mut merged: Vec<(String, Counts, LatencyHistogram)> = endpoints
        .iter()
        .map(|e| (endpoint_name(e), Counts::default(), LatencyHistogram::new()))
        .collect();
    let ended = record.status != RunStatus::Running;
    if window.is_whole() && ended {
        for s in store.summaries(&record.id).await? {
            add(&mut merged, s.endpoint, &s.counts, &s.histogram)?;
        }
    } else {
        add_window(store, record, window, &mut merged).await?;
    }
    Ok(Totals {
        endpoints: merged,
        duration_s: window_duration_s(window, length_s(record, now_ms)),
    })
}

pub(crate) fn add(
    merged: &mut [(String, Counts, LatencyHistogram)],
    endpoint: u32,
    counts: &Counts,
    histogram: &LatencyHistogram,
) -> Result<(), HistoryError> {
    let slot = merged.get_mut(endpoint as usize).ok_or_else(|| {
        HistoryError::Store(cicada_store::StoreError::Corrupt(format!(
            "row of endpoint {endpoint} outside the endpoint table"
        )))
    })?;
    slot.1.add(counts);
    merge(&mut slot.2, histogram)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_clipped_to_the_run() {
        let w = |from, to| Window::new(from, to).unwrap();
        assert_eq!(window_duration_s(w(None, None), 600.0), 600.0);
        assert_eq!(window_duration_s(w(Some(60), Some(300)), 600.0), 240.0);
        assert_eq!(window_duration_s(w(Some(60), Some(900)), 600.0), 540.0);
        assert_eq!(window_duration_s(w(Some(700), None), 600.0), 0.0);
        assert!(Window::new(Some(300), Some(60)).is_err());
        assert!(Window::new(Some(60), Some(60)).is_err());
    }
}
