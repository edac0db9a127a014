//! Conversions between the records and their column values, shared by both
//! databases (both store integers as signed 64-bit and histograms as bytes).

use std::collections::{BTreeMap, HashMap};

use cicada_histogram::{Counts, LatencyHistogram};

use crate::StoreError;
use crate::model::{EndpointTotals, RunRecord, RunStatus};

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

/// For the rollup rows: V2 without DEFLATE, cheaper to decode.
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

/// Seconds in a rollup block of the second level (a minute is 6 of them).
pub(crate) const TEN_S: i64 = 10;

/// First second of the block of `span` seconds that `second` falls in,
/// blocks aligned to `origin` (`origin + span * k`, also before the origin).
pub(crate) fn block_start(origin: i64, span: i64, second: i64) -> i64 {
    let (o, s) = (i128::from(origin), i128::from(span));
    let start = o + (i128::from(second) - o).div_euclid(s) * s;
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// The whole blocks of `span` seconds (aligned to `origin`) inside
/// `[from, to)` as the seconds `[first, end)` they cover; `None` when no
/// whole block fits.
pub(crate) fn whole_blocks(origin: i64, span: i64, from: i64, to: i64) -> Option<(i64, i64)> {
    let (o, s) = (i128::from(origin), i128::from(span));
    let first = o - (o - i128::from(from)).div_euclid(s) * s;
    let end = o + (i128::from(to) - o).div_euclid(s) * s;
    match (i64::try_from(first), i64::try_from(end)) {
        (Ok(first), Ok(end)) if first < end => Some((first, end)),
        _ => None,
    }
}

/// Where a window `[from, to)` is read from: whole minutes `[minutes.0,
/// minutes.1)`, 10-second blocks `[tens.0, minutes.0)` and `[minutes.1,
/// tens.1)`, seconds `[from, tens.0)` and `[tens.1, to)`, with
/// `from <= tens.0 <= minutes.0 <= minutes.1 <= tens.1 <= to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RollupBounds {
    pub tens: (i64, i64),
    pub minutes: (i64, i64),
}

impl RollupBounds {
    /// The bounds of a window for a run rolled up from `origin`; without
    /// the 10-second level (`with_tens` false) the tens ranges are empty.
    pub(crate) fn new(origin: i64, from: i64, to: i64, with_tens: bool) -> Self {
        let minutes = whole_blocks(origin, MINUTE_S, from, to);
        if !with_tens {
            let span = minutes.unwrap_or((to, to));
            return Self {
                tens: span,
                minutes: span,
            };
        }
        match whole_blocks(origin, TEN_S, from, to) {
            // Minutes are whole blocks too (60 = 6 x 10 from the same
            // origin), so they lie inside the tens span.
            Some(tens) => Self {
                tens,
                minutes: minutes.unwrap_or((tens.1, tens.1)),
            },
            None => Self {
                tens: (to, to),
                minutes: (to, to),
            },
        }
    }
}

/// Counts and merged histograms of one endpoint over one block.
type Block = (Counts, LatencyHistogram, Option<LatencyHistogram>);

fn add_block(into: &mut Block, other: &Block) -> Result<(), StoreError> {
    into.0.add(&other.0);
    merge(&mut into.1, &other.1)?;
    merge_into_optional(&mut into.2, other.2.as_ref())
}

/// One rollup row ready to insert (histograms V2 without DEFLATE).
pub(crate) struct EncodedBlock {
    pub start: i64,
    pub endpoint: u32,
    pub counts: Counts,
    pub histogram: Vec<u8>,
    pub uncorrected: Option<Vec<u8>>,
}

fn encode_block(start: i64, endpoint: u32, block: &Block) -> Result<EncodedBlock, StoreError> {
    Ok(EncodedBlock {
        start,
        endpoint,
        counts: block.0,
        histogram: encode_uncompressed(&block.1)?,
        uncorrected: block.2.as_ref().map(encode_uncompressed).transpose()?,
    })
}

/// Merges per-second rows, given in second order, into 10-second blocks,
/// those into minutes and those into per-endpoint totals, all aligned to an
/// origin: each second's histogram is decoded once and only the current
/// block and minute are held in memory.
pub(crate) struct RollupBuilder {
    origin: i64,
    ten: Option<(i64, BTreeMap<u32, Block>)>,
    minute: Option<(i64, BTreeMap<u32, Block>)>,
    totals: HashMap<u32, Block>,
    tens: Vec<EncodedBlock>,
    minutes: Vec<EncodedBlock>,
}

/// What [`RollupBuilder::finish`] returns.
pub(crate) struct Rollup {
    /// Ordered by start, then endpoint.
    pub tens: Vec<EncodedBlock>,
    /// Ordered by start, then endpoint.
    pub minutes: Vec<EncodedBlock>,
    pub totals: Vec<EndpointTotals>,
}

impl RollupBuilder {
    pub(crate) fn new(origin: i64) -> Self {
        Self {
            origin,
            ten: None,
            minute: None,
            totals: HashMap::new(),
            tens: Vec::new(),
            minutes: Vec::new(),
        }
    }

    /// Adds one per-second row; rows come in second order.
    pub(crate) fn add(
        &mut self,
        second: i64,
        endpoint: u32,
        row: &CountsRow,
        uncorrected: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let block = (
            counts_from_row(row),
            decode(&row.4)?,
            decode_optional(uncorrected)?,
        );
        let start = block_start(self.origin, TEN_S, second);
        match &self.ten {
            Some((current, _)) if *current == start => {}
            Some((current, _)) if *current > start => {
                return Err(StoreError::Corrupt(format!(
                    "per-second rows out of order: second {second} after block {current}"
                )));
            }
            _ => self.flush_ten()?,
        }
        let (_, ten) = self.ten.get_or_insert_with(|| (start, BTreeMap::new()));
        add_block(ten.entry(endpoint).or_default(), &block)
    }

    /// Emits the current 10-second block and adds it to its minute.
    fn flush_ten(&mut self) -> Result<(), StoreError> {
        let Some((start, endpoints)) = self.ten.take() else {
            return Ok(());
        };
        let minute = block_start(self.origin, MINUTE_S, start);
        if self.minute.as_ref().is_some_and(|(m, _)| *m != minute) {
            self.flush_minute()?;
        }
        let (_, into) = self.minute.get_or_insert_with(|| (minute, BTreeMap::new()));
        for (endpoint, block) in endpoints {
            self.tens.push(encode_block(start, endpoint, &block)?);
            add_block(into.entry(endpoint).or_default(), &block)?;
        }
        Ok(())
    }

    /// Emits the current minute and adds it to the totals.
    fn flush_minute(&mut self) -> Result<(), StoreError> {
        let Some((start, endpoints)) = self.minute.take() else {
            return Ok(());
        };
        for (endpoint, block) in endpoints {
            self.minutes.push(encode_block(start, endpoint, &block)?);
            add_block(self.totals.entry(endpoint).or_default(), &block)?;
        }
        Ok(())
    }

    /// The blocks, the minutes and the totals of every endpoint in
    /// `endpoints` (zero for one without rows, so summaries cover the whole
    /// table).
    pub(crate) fn finish(mut self, endpoints: &[u32]) -> Result<Rollup, StoreError> {
        self.flush_ten()?;
        self.flush_minute()?;
        let totals = endpoints
            .iter()
            .map(|&endpoint| {
                let (counts, histogram, uncorrected) =
                    self.totals.remove(&endpoint).unwrap_or_default();
                EndpointTotals {
                    endpoint,
                    counts,
                    histogram,
                    uncorrected,
                }
            })
            .collect();
        Ok(Rollup {
            tens: self.tens,
            minutes: self.minutes,
            totals,
        })
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
    let mut checks: Vec<u32> = run.checks.iter().map(|c| c.index).collect();
    checks.sort_unstable();
    let holes = checks
        .iter()
        .enumerate()
        .any(|(i, &index)| index as usize != i);
    if holes
        || run
            .checks
            .iter()
            .any(|c| c.endpoint as usize >= run.endpoints.len())
    {
        return Err(StoreError::Invalid(format!(
            "checks of run {} must be indexed 0..{} without holes or repeats, each of an endpoint of the run",
            run.id,
            run.checks.len()
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

/// What applying a delta does to its source's watermark.
#[derive(Debug, PartialEq)]
pub(crate) enum Advance {
    /// At or below the watermark: already applied, nothing changes.
    Duplicate,
    /// Merge (unless it is a loss marker) and move the watermark to this.
    Apply {
        next: crate::Watermark,
        marker: bool,
    },
}

/// What to do with `delta` for a run in `status` whose source is at
/// `current` (both databases): a duplicate is answered as such even for an
/// ended run (its acknowledgement was lost); a new delta for an ended run
/// is refused.
pub(crate) fn decide(
    delta: &crate::Delta,
    current: &crate::Watermark,
    status: &str,
) -> Result<Advance, StoreError> {
    let advance = advance(delta, current);
    if let Ok(Advance::Duplicate) = advance {
        return Ok(Advance::Duplicate);
    }
    if status != crate::RunStatus::Running.as_str() {
        return Err(StoreError::RunFinished(delta.run_id.clone()));
    }
    advance
}

/// The watermark after `delta`, from the `current` one (both databases):
/// duplicates, gaps and malformed loss markers decided in one place.
pub(crate) fn advance(
    delta: &crate::Delta,
    current: &crate::Watermark,
) -> Result<Advance, StoreError> {
    if delta.seq <= current.seq {
        return Ok(Advance::Duplicate);
    }
    let first = if delta.first_seq == 0 {
        delta.seq
    } else {
        delta.first_seq
    };
    let marker = first != delta.seq || !delta.evicted.is_empty();
    if first > delta.seq
        || (marker
            && (delta.evicted.len() as u64 != delta.seq - first + 1 || !delta.endpoints.is_empty()))
    {
        return Err(StoreError::Invalid(format!(
            "delta {} of worker {} is a malformed loss marker (first seq {first}, {} counts, {} endpoints)",
            delta.seq,
            delta.worker_id,
            delta.evicted.len(),
            delta.endpoints.len()
        )));
    }
    if first > current.seq + 1 {
        return Err(StoreError::Gap {
            run_id: delta.run_id.clone(),
            worker_id: delta.worker_id.clone(),
            expected: current.seq + 1,
            got: first,
        });
    }
    // Deltas of a marker at or below the watermark were applied before
    // (their acknowledgement was lost): only the rest are lost.
    let applied_before = (current.seq + 1 - first) as usize;
    let evicted: u64 = delta.evicted.iter().skip(applied_before).sum();
    Ok(Advance::Apply {
        next: crate::Watermark {
            worker_id: current.worker_id.clone(),
            seq: delta.seq,
            requests: current.requests + delta.requests(),
            cut_at_ms: current.cut_at_ms.max(delta.cut_at_ms),
            peak_rps: recent_peak(current, delta),
            evicted_requests: current.evicted_requests + evicted,
        },
        marker,
    })
}

/// How fast a source's peak rate is forgotten: it halves for every
/// `PEAK_HALF_LIFE_MS` (worker clock) in which no interval reaches it, so
/// it holds the fastest of about the last 5-10 s.
const PEAK_HALF_LIFE_MS: f64 = 5_000.0;

/// A source's recent peak rate after `delta`: the faster of its interval
/// and the previous peak, decayed over the time between their cuts. A fast
/// start long ago does not widen the bound of a worker lost much later
/// (docs/RELIABILITY.md, "Worker killed").
fn recent_peak(current: &crate::Watermark, delta: &crate::Delta) -> f64 {
    let elapsed_ms = (delta.cut_at_ms - current.cut_at_ms).max(0) as f64;
    let decayed = current.peak_rps * 0.5f64.powf(elapsed_ms / PEAK_HALF_LIFE_MS);
    delta.rate().map_or(decayed, |rate| rate.max(decayed))
}

/// The applied deltas of one batch merged per (run, second): what one
/// `merge_delta` per group writes instead of one per delta (counts added,
/// histograms merged, failures and checks summed, users added). A delta's
/// endpoints are distinct (checked by `sorted_endpoints`), so each group's
/// are too.
pub(crate) fn merge_by_second(deltas: &[&crate::Delta]) -> Result<Vec<crate::Delta>, StoreError> {
    let mut groups: std::collections::BTreeMap<(&str, i64), crate::Delta> = Default::default();
    for delta in deltas {
        let group = groups
            .entry((delta.run_id.as_str(), delta.second))
            .or_insert_with(|| crate::Delta {
                run_id: delta.run_id.clone(),
                // Named in error messages: the batch's first delta here.
                worker_id: delta.worker_id.clone(),
                seq: delta.seq,
                first_seq: delta.seq,
                second: delta.second,
                ..crate::Delta::default()
            });
        group.active_users += delta.active_users;
        group.dropped += delta.dropped;
        for endpoint in &delta.endpoints {
            match group
                .endpoints
                .iter_mut()
                .find(|e| e.endpoint == endpoint.endpoint)
            {
                None => group.endpoints.push(endpoint.clone()),
                Some(into) => {
                    into.counts.add(&endpoint.counts);
                    merge(&mut into.histogram, &endpoint.histogram)?;
                    match (&mut into.uncorrected, &endpoint.uncorrected) {
                        (Some(into), Some(more)) => merge(into, more)?,
                        (slot @ None, Some(more)) => *slot = Some(more.clone()),
                        (_, None) => {}
                    }
                    for failure in &endpoint.failures {
                        match into.failures.iter_mut().find(|f| f.kind == failure.kind) {
                            Some(f) => {
                                f.count += failure.count;
                                f.last_message.clone_from(&failure.last_message);
                            }
                            None => into.failures.push(failure.clone()),
                        }
                    }
                    for check in &endpoint.checks {
                        match into.checks.iter_mut().find(|c| c.check == check.check) {
                            Some(c) => {
                                c.passed += check.passed;
                                c.failed += check.failed;
                            }
                            None => into.checks.push(*check),
                        }
                    }
                }
            }
        }
    }
    Ok(groups.into_values().collect())
}

/// Moves the failures and checks out of the (run, second) groups of a batch
/// into one delta per run (in run order; endpoints, failure kinds and checks
/// sorted), so the run-wide failure and check rows are written once per
/// batch after every second's rows, in one fixed order.
pub(crate) fn take_run_tails(groups: &mut [crate::Delta]) -> Vec<crate::Delta> {
    use std::collections::BTreeMap;
    type Tail = BTreeMap<u32, (BTreeMap<String, (u64, String)>, BTreeMap<u32, (u64, u64)>)>;
    let mut runs: BTreeMap<String, Tail> = BTreeMap::new();
    for group in groups.iter_mut() {
        for endpoint in &mut group.endpoints {
            if endpoint.failures.is_empty() && endpoint.checks.is_empty() {
                continue;
            }
            let tail = runs.entry(group.run_id.clone()).or_default();
            let (failures, checks) = tail.entry(endpoint.endpoint).or_default();
            for failure in std::mem::take(&mut endpoint.failures) {
                let entry = failures.entry(failure.kind).or_default();
                entry.0 += failure.count;
                entry.1 = failure.last_message;
            }
            for check in std::mem::take(&mut endpoint.checks) {
                let entry = checks.entry(check.check).or_default();
                entry.0 += check.passed;
                entry.1 += check.failed;
            }
        }
    }
    runs.into_iter()
        .map(|(run_id, tail)| crate::Delta {
            run_id,
            endpoints: tail
                .into_iter()
                .map(|(endpoint, (failures, checks))| crate::EndpointDelta {
                    endpoint,
                    failures: failures
                        .into_iter()
                        .map(|(kind, (count, last_message))| crate::FailureCount {
                            kind,
                            count,
                            last_message,
                        })
                        .collect(),
                    checks: checks
                        .into_iter()
                        .map(|(check, (passed, failed))| crate::CheckCount {
                            check,
                            passed,
                            failed,
                        })
                        .collect(),
                    counts: Default::default(),
                    histogram: cicada_histogram::LatencyHistogram::new(),
                    uncorrected: None,
                })
                .collect(),
            ..crate::Delta::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_to_the_origin() {
        let o = 1_700_000_017;
        assert_eq!(block_start(o, MINUTE_S, o), o);
        assert_eq!(block_start(o, MINUTE_S, o + 59), o);
        assert_eq!(block_start(o, MINUTE_S, o + 60), o + 60);
        assert_eq!(block_start(o, MINUTE_S, o - 1), o - 60);
        assert_eq!(block_start(o, MINUTE_S, o - 60), o - 60);
        assert_eq!(block_start(o, MINUTE_S, o - 61), o - 120);
        assert_eq!(block_start(o, TEN_S, o + 9), o);
        assert_eq!(block_start(o, TEN_S, o + 61), o + 60);
        assert_eq!(block_start(o, TEN_S, o - 1), o - 10);
    }

    #[test]
    fn whole_blocks_of_a_window() {
        let o = 1_700_000_017;
        let minutes = |from, to| whole_blocks(o, MINUTE_S, from, to);
        // Aligned: every minute of the window.
        assert_eq!(minutes(o + 60, o + 300), Some((o + 60, o + 300)));
        // Not aligned: the minutes strictly inside.
        assert_eq!(minutes(o + 61, o + 299), Some((o + 120, o + 240)));
        assert_eq!(minutes(o - 5, o + 125), Some((o, o + 120)));
        // Less than a whole minute.
        assert_eq!(minutes(o + 61, o + 150), None);
        assert_eq!(minutes(o + 1, o + 60), None);
        assert_eq!(
            whole_blocks(o, TEN_S, o + 61, o + 150),
            Some((o + 70, o + 150))
        );
        assert_eq!(whole_blocks(o, TEN_S, o + 61, o + 69), None);
        // Open ends.
        let (first, end) = minutes(i64::MIN, i64::MAX).unwrap();
        assert!(first <= o && end > o + 1_000_000_000);
        assert_eq!((i128::from(first) - i128::from(o)) % 60, 0);
        assert_eq!((end - o) % 60, 0);
    }

    #[test]
    fn rollup_bounds_of_a_window() {
        let o = 1_700_000_017;
        let bounds = |from: i64, to: i64, with_tens| {
            let b = RollupBounds::new(o, o + from, o + to, with_tens);
            (
                (b.tens.0 - o, b.tens.1 - o),
                (b.minutes.0 - o, b.minutes.1 - o),
            )
        };
        // Aligned to minutes: minutes only.
        assert_eq!(bounds(60, 3600, true), ((60, 3600), (60, 3600)));
        // Aligned to tens: blocks at both edges.
        assert_eq!(bounds(70, 3590, true), ((70, 3590), (120, 3540)));
        // Aligned to neither: at most 9 seconds per edge.
        assert_eq!(bounds(61, 3599, true), ((70, 3590), (120, 3540)));
        assert_eq!(bounds(90, 150, true), ((90, 150), (150, 150)));
        assert_eq!(bounds(91, 99, true), ((99, 99), (99, 99)));
        // Without the 10-second level: the whole minutes.
        assert_eq!(bounds(61, 3599, false), ((120, 3540), (120, 3540)));
        assert_eq!(bounds(90, 150, false), ((150, 150), (150, 150)));
        // Every bound lies in the window, in order.
        for (from, to) in [(-35, 7), (0, 1), (3, 13), (59, 121), (-600, 600)] {
            for with_tens in [true, false] {
                let ((t0, t1), (m0, m1)) = bounds(from, to, with_tens);
                assert!(from <= t0 && t0 <= m0 && m0 <= m1 && m1 <= t1 && t1 <= to);
                assert!(with_tens || (t0, t1) == (m0, m1));
            }
        }
    }

    #[test]
    fn the_peak_rate_is_recent() {
        // 100 requests per 100 ms interval (1,000/s), cut every 100 ms.
        let interval = |requests: u64, cut_at_ms: i64| crate::Delta {
            cut_at_ms,
            interval_us: 100_000,
            endpoints: vec![crate::EndpointDelta {
                endpoint: 0,
                counts: Counts {
                    requests,
                    ..Counts::default()
                },
                histogram: LatencyHistogram::new(),
                uncorrected: None,
                failures: Vec::new(),
                checks: Vec::new(),
            }],
            ..crate::Delta::default()
        };
        let mut mark = crate::Watermark::default();
        mark.peak_rps = recent_peak(&mark, &interval(300, 1_000));
        mark.cut_at_ms = 1_000;
        assert_eq!(mark.peak_rps, 3_000.0, "the first interval sets it");
        // Slower intervals: the fast one is remembered, halving per 5 s.
        mark.peak_rps = recent_peak(&mark, &interval(100, 6_000));
        mark.cut_at_ms = 6_000;
        assert_eq!(mark.peak_rps, 1_500.0);
        mark.peak_rps = recent_peak(&mark, &interval(100, 16_000));
        mark.cut_at_ms = 16_000;
        assert_eq!(mark.peak_rps, 1_000.0, "the steady rate once it is faster");
        // A loss marker or a short interval says nothing about the rate.
        let short = crate::Delta {
            interval_us: 10_000,
            ..interval(100, 21_000)
        };
        assert_eq!(recent_peak(&mark, &short), 500.0);
    }

    #[test]
    fn blocks_out_of_order_are_an_error() {
        let row: CountsRow = (1, 0, 0, 0, Vec::new());
        let mut builder = RollupBuilder::new(100);
        builder.add(125, 0, &row, None).unwrap();
        assert!(matches!(
            builder.add(105, 0, &row, None),
            Err(StoreError::Corrupt(_))
        ));
    }
}
