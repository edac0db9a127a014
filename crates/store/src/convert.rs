//! Conversions between the records and their column values, shared by both
//! databases (both store integers as signed 64-bit and histograms as bytes).

use std::collections::{BTreeMap, HashMap};

use cicada_histogram::{Counts, LatencyHistogram};

use crate::StoreError;
use crate::model::{EndpointTotals, MinuteRow, RunRecord, RunStatus};

/// Counters are u64 in memory and BIGINT in the database; real counts never
/// come near 2^63, so saturate rather than fail.
pub(crate) fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn encode(histogram: &LatencyHistogram) -> Result<Vec<u8>, StoreError> {
    histogram
        .encode()
        .map_err(|error| StoreError::Invalid(error.to_string()))
}

/// For the per-minute rollup: V2 without DEFLATE, cheaper to decode.
pub(crate) fn encode_uncompressed(histogram: &LatencyHistogram) -> Result<Vec<u8>, StoreError> {
    histogram
        .encode_uncompressed()
        .map_err(|error| StoreError::Invalid(error.to_string()))
}

pub(crate) fn decode(bytes: &[u8]) -> Result<LatencyHistogram, StoreError> {
    LatencyHistogram::decode(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn merge(
    into: &mut LatencyHistogram,
    other: &LatencyHistogram,
) -> Result<(), StoreError> {
    into.merge(other)
        .map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// A nullable histogram column.
pub(crate) fn decode_optional(
    bytes: Option<&[u8]>,
) -> Result<Option<LatencyHistogram>, StoreError> {
    bytes.map(decode).transpose()
}

pub(crate) fn encode_optional(
    histogram: Option<&LatencyHistogram>,
) -> Result<Option<Vec<u8>>, StoreError> {
    histogram.map(encode).transpose()
}

/// The nullable uncorrected-histogram column after merging `delta` into
/// `stored`: unchanged when the delta has none (closed model).
pub(crate) fn merge_optional(
    stored: Option<&[u8]>,
    delta: Option<&LatencyHistogram>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(delta) = delta else {
        return Ok(stored.map(<[u8]>::to_vec));
    };
    let mut merged = decode_optional(stored)?.unwrap_or_default();
    merge(&mut merged, delta)?;
    encode(&merged).map(Some)
}

/// Adds `other` into an optional total (`None` + `None` stays `None`).
pub(crate) fn merge_into_optional(
    into: &mut Option<LatencyHistogram>,
    other: Option<&LatencyHistogram>,
) -> Result<(), StoreError> {
    if let Some(other) = other {
        merge(into.get_or_insert_with(LatencyHistogram::new), other)?;
    }
    Ok(())
}

/// Columns of a counts + histogram row: requests, failures, cancelled, bytes, histogram.
pub(crate) type CountsRow = (i64, i64, i64, i64, Vec<u8>);

pub(crate) fn counts_from_row(row: &CountsRow) -> Counts {
    Counts {
        requests: from_db(row.0),
        failures: from_db(row.1),
        cancelled: from_db(row.2),
        bytes: from_db(row.3),
    }
}

/// Columns of `runs` in the order the `SELECT`s list them.
pub(crate) type RunRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

/// The column list matching [`RunRow`].
pub(crate) const RUN_COLUMNS: &str = "id, scenario_name, scenario_yaml, host, config_json, labels_json, status, started_at_ms, ended_at_ms, error";

pub(crate) fn run_from_row(row: RunRow) -> Result<RunRecord, StoreError> {
    let labels: BTreeMap<String, String> = serde_json::from_str(&row.5)
        .map_err(|error| StoreError::Corrupt(format!("labels of run {}: {error}", row.0)))?;
    let status = row.6.parse().map_err(StoreError::Corrupt)?;
    Ok(RunRecord {
        id: row.0,
        scenario_name: row.1,
        scenario_yaml: row.2,
        host: row.3,
        config_json: row.4,
        labels,
        status,
        started_at_ms: row.7,
        ended_at_ms: row.8,
        error: row.9,
    })
}

pub(crate) fn labels_to_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).expect("a string map always serializes")
}

pub(crate) fn check_finish_status(status: RunStatus) -> Result<(), StoreError> {
    if status == RunStatus::Running {
        return Err(StoreError::Invalid(
            "a run can only finish as finished or failed".to_owned(),
        ));
    }
    Ok(())
}

/// Seconds in a rollup minute.
pub(crate) const MINUTE_S: i64 = 60;

/// First second of the minute `second` falls in, minutes aligned to `origin`
/// (`origin + 60k`, also before the origin).
pub(crate) fn minute_start(origin: i64, second: i64) -> i64 {
    let start = i128::from(origin)
        + (i128::from(second) - i128::from(origin)).div_euclid(i128::from(MINUTE_S))
            * i128::from(MINUTE_S);
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// The whole minutes (aligned to `origin`) inside `[from, to)` as the span
/// `[first, end)` they cover; `(to, to)` when no whole minute fits.
pub(crate) fn whole_minutes(origin: i64, from: i64, to: i64) -> (i64, i64) {
    let (o, m) = (i128::from(origin), i128::from(MINUTE_S));
    let first = o - (o - i128::from(from)).div_euclid(m) * m;
    let end = o + (i128::from(to) - o).div_euclid(m) * m;
    match (i64::try_from(first), i64::try_from(end)) {
        (Ok(first), Ok(end)) if first < end => (first, end),
        _ => (to, to),
    }
}

/// Merges per-second rows into per-minute rows aligned to an origin, and
/// those into per-endpoint totals: each second's histogram is decoded once.
pub(crate) struct MinutesBuilder {
    origin: i64,
    minutes: BTreeMap<(i64, u32), (Counts, LatencyHistogram, Option<LatencyHistogram>)>,
}

impl MinutesBuilder {
    pub(crate) fn new(origin: i64) -> Self {
        Self {
            origin,
            minutes: BTreeMap::new(),
        }
    }

    pub(crate) fn add(
        &mut self,
        second: i64,
        endpoint: u32,
        row: &CountsRow,
        uncorrected: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let histogram = decode(&row.4)?;
        let uncorrected = decode_optional(uncorrected)?;
        let entry = self
            .minutes
            .entry((minute_start(self.origin, second), endpoint))
            .or_default();
        entry.0.add(&counts_from_row(row));
        merge(&mut entry.1, &histogram)?;
        merge_into_optional(&mut entry.2, uncorrected.as_ref())
    }

    /// The minutes ordered by minute then endpoint, and the totals of every
    /// endpoint in `endpoints` (zero for one without rows, so summaries
    /// cover the whole table).
    pub(crate) fn finish(
        self,
        endpoints: &[u32],
    ) -> Result<(Vec<MinuteRow>, Vec<EndpointTotals>), StoreError> {
        let mut totals: HashMap<u32, (Counts, LatencyHistogram, Option<LatencyHistogram>)> =
            HashMap::new();
        let mut minutes = Vec::with_capacity(self.minutes.len());
        for ((minute_start, endpoint), (counts, histogram, uncorrected)) in self.minutes {
            let total = totals.entry(endpoint).or_default();
            total.0.add(&counts);
            merge(&mut total.1, &histogram)?;
            merge_into_optional(&mut total.2, uncorrected.as_ref())?;
            minutes.push(MinuteRow {
                minute_start,
                endpoint,
                counts,
                histogram,
                uncorrected,
            });
        }
        let totals = endpoints
            .iter()
            .map(|&endpoint| {
                let (counts, histogram, uncorrected) = totals.remove(&endpoint).unwrap_or_default();
                EndpointTotals {
                    endpoint,
                    counts,
                    histogram,
                    uncorrected,
                }
            })
            .collect();
        Ok((minutes, totals))
    }
}

/// Validates a delta's shape before any write: one entry per endpoint, sorted
/// by endpoint so concurrent transactions lock rows in the same order.
pub(crate) fn sorted_endpoints(
    delta: &crate::Delta,
) -> Result<Vec<&crate::EndpointDelta>, StoreError> {
    let mut endpoints: Vec<_> = delta.endpoints.iter().collect();
    endpoints.sort_by_key(|e| e.endpoint);
    if endpoints.windows(2).any(|w| w[0].endpoint == w[1].endpoint) {
        return Err(StoreError::Invalid(format!(
            "delta {} of worker {} lists an endpoint twice",
            delta.seq, delta.worker_id
        )));
    }
    Ok(endpoints)
}

/// Failures of a delta summed by (endpoint, kind), keeping the last message,
/// in (endpoint, kind) order for the same lock order reason.
pub(crate) fn merged_failures(endpoints: &[&crate::EndpointDelta]) -> Vec<FailureRow> {
    let mut merged: std::collections::BTreeMap<(u32, &str), (u64, &str)> = Default::default();
    for endpoint in endpoints {
        for failure in &endpoint.failures {
            let entry = merged
                .entry((endpoint.endpoint, failure.kind.as_str()))
                .or_default();
            entry.0 += failure.count;
            entry.1 = &failure.last_message;
        }
    }
    merged
        .into_iter()
        .map(|((endpoint, kind), (count, last_message))| FailureRow {
            endpoint,
            kind: kind.to_owned(),
            count,
            last_message: last_message.to_owned(),
        })
        .collect()
}

/// One (endpoint, kind) failure upsert.
pub(crate) struct FailureRow {
    pub endpoint: u32,
    pub kind: String,
    pub count: u64,
    pub last_message: String,
}

/// Checks that the endpoint table is indexed 0..n without holes or repeats.
pub(crate) fn check_endpoints(run: &crate::NewRun) -> Result<(), StoreError> {
    let mut indexes: Vec<u32> = run.endpoints.iter().map(|e| e.index).collect();
    indexes.sort_unstable();
    if indexes
        .iter()
        .enumerate()
        .any(|(i, &index)| index as usize != i)
    {
        return Err(StoreError::Invalid(format!(
            "endpoints of run {} must be indexed 0..{} without holes or repeats",
            run.id,
            run.endpoints.len()
        )));
    }
    Ok(())
}

/// Label keys are what `--label key=value` accepts: not empty, no `=`.
pub(crate) fn check_label_key(key: &str) -> Result<(), StoreError> {
    if key.trim().is_empty() || key.contains('=') {
        return Err(StoreError::Invalid(format!(
            "label key {key:?} is not allowed; a key is non-empty text without '='"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_aligned_to_the_origin() {
        let o = 1_700_000_017;
        assert_eq!(minute_start(o, o), o);
        assert_eq!(minute_start(o, o + 59), o);
        assert_eq!(minute_start(o, o + 60), o + 60);
        assert_eq!(minute_start(o, o - 1), o - 60);
        assert_eq!(minute_start(o, o - 60), o - 60);
        assert_eq!(minute_start(o, o - 61), o - 120);
    }

    #[test]
    fn whole_minutes_of_a_window() {
        let o = 1_700_000_017;
        // Aligned: every minute of the window.
        assert_eq!(whole_minutes(o, o + 60, o + 300), (o + 60, o + 300));
        // Not aligned: the minutes strictly inside.
        assert_eq!(whole_minutes(o, o + 61, o + 299), (o + 120, o + 240));
        assert_eq!(whole_minutes(o, o - 5, o + 125), (o, o + 120));
        // Less than a whole minute.
        assert_eq!(whole_minutes(o, o + 61, o + 150), (o + 150, o + 150));
        assert_eq!(whole_minutes(o, o + 1, o + 60), (o + 60, o + 60));
        // Open ends.
        let (first, end) = whole_minutes(o, i64::MIN, i64::MAX);
        assert!(first <= o && end > o + 1_000_000_000);
        assert_eq!((i128::from(first) - i128::from(o)) % 60, 0);
        assert_eq!((end - o) % 60, 0);
    }
}
