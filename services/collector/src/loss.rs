//! Bounding what a worker that died without its final flush took with it
//! (docs/RELIABILITY.md, "Worker killed").
//!
//! Deltas apply in seq order, so everything the worker completed after the
//! end of its last applied interval (`cut_at_ms`) is missing, and nothing
//! before it. The worker's completions between that moment and its death
//! are bounded by its peak interval rate times the time between them; its
//! last heartbeat gives a second bound (its cumulative count then, plus the
//! peak rate until the death), useful when its deltas were held up. The
//! smaller of the two, plus the requests it can have had in flight (the
//! target may have served them without the worker ever recording them),
//! is `unrecorded_max`. The assumption: the worker did not complete
//! requests faster in its last moments than `RATE_MARGIN` times its recent
//! peak (the fastest of its intervals, forgotten at half per 5 s; see
//! `cicada_store`'s watermark).

use cicada_proto::v1;
use cicada_store::{LostWorkerRecord, Watermark};

/// The source id a lost worker's deltas were sent under.
pub(crate) fn source(lost: &v1::LostWorker) -> &str {
    if lost.delta_source.is_empty() {
        &lost.worker_id
    } else {
        &lost.delta_source
    }
}

/// The watermark of a lost worker's deltas: its source's, or, when the
/// controller never learnt the source (lost before its first heartbeat),
/// the one source named after the worker (`{worker_id}.…`) that no final
/// flush accounts for.
pub(crate) fn watermark<'a>(
    lost: &v1::LostWorker,
    marks: &'a [Watermark],
    finals: &[v1::WorkerFinal],
) -> Option<&'a Watermark> {
    if !lost.delta_source.is_empty() {
        return marks.iter().find(|m| m.worker_id == lost.delta_source);
    }
    let prefix = format!("{}.", lost.worker_id);
    let mut unflushed = marks.iter().filter(|m| {
        m.worker_id.starts_with(&prefix) && !finals.iter().any(|f| f.worker_id == m.worker_id)
    });
    match (unflushed.next(), unflushed.next()) {
        (Some(mark), None) => Some(mark),
        _ => marks.iter().find(|m| m.worker_id == lost.worker_id),
    }
}

/// How much faster than its recent peak a worker is assumed to have run in
/// its last moments: a window shorter than a delta interval can run faster
/// than any whole interval before it (up to 1.13x was measured, 3 workers on
/// 2 cores, docs/RELIABILITY.md).
const RATE_MARGIN: f64 = 1.25;

/// The bound for one lost worker, from its source's watermark (`None` when
/// none of its deltas arrived) and the run's start (collector clock).
pub(crate) fn bound(
    lost: &v1::LostWorker,
    watermark: Option<&Watermark>,
    run_started_at_ms: i64,
) -> LostWorkerRecord {
    let received = watermark.map_or(0, |w| w.requests);
    // Its fastest interval, or the controller's measure between heartbeats
    // when no delta gave a rate (or that one is faster).
    let peak = watermark.map_or(0.0, |w| w.peak_rps).max(lost.rate_rps) * RATE_MARGIN;
    let since = |from_ms: i64| (lost.worker_at_ms - from_ms).max(0) as f64 / 1000.0;
    let from_deltas = watermark
        .filter(|w| w.cut_at_ms > 0)
        .map(|w| received as f64 + peak * since(w.cut_at_ms));
    let from_heartbeat = (lost.heartbeat_at_ms > 0)
        .then(|| lost.heartbeat_requests as f64 + peak * since(lost.heartbeat_at_ms));
    let completed_max = match (from_deltas, from_heartbeat) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => received as f64,
    }
    .ceil()
    .max(received as f64) as u64;
    LostWorkerRecord {
        worker_id: lost.worker_id.clone(),
        delta_source: source(lost).to_owned(),
        at_s: ((lost.detected_at_ms - run_started_at_ms).max(0) as f64) / 1000.0,
        received,
        unrecorded_max: completed_max - received + lost.in_flight_max,
    }
}

/// A worker that flushed (`WorkDone`) but whose last deltas had not arrived
/// when the wait ended: exactly what they held is missing. `None` when
/// everything arrived.
pub(crate) fn unflushed(
    last: &v1::WorkerFinal,
    watermark: Option<&Watermark>,
    ended_at_s: f64,
) -> Option<LostWorkerRecord> {
    let (seq, received, evicted) =
        watermark.map_or((0, 0, 0), |w| (w.seq, w.requests, w.evicted_requests));
    (seq < last.last_seq).then(|| LostWorkerRecord {
        worker_id: last
            .worker_id
            .rsplit_once('.')
            .map_or(last.worker_id.as_str(), |(id, _)| id)
            .to_owned(),
        delta_source: last.worker_id.clone(),
        at_s: ended_at_s,
        received,
        unrecorded_max: last.requests.saturating_sub(received + evicted).max(1),
    })
}

/// The protocol form of a stored record.
pub(crate) fn stat(record: &LostWorkerRecord) -> v1::LostWorkerStat {
    v1::LostWorkerStat {
        worker_id: record.worker_id.clone(),
        delta_source: record.delta_source.clone(),
        at_s: record.at_s,
        received: record.received,
        unrecorded_max: record.unrecorded_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(worker_at_ms: i64, heartbeat: Option<(u64, i64)>) -> v1::LostWorker {
        let (heartbeat_requests, heartbeat_at_ms) = heartbeat.unwrap_or((0, 0));
        v1::LostWorker {
            worker_id: "w".into(),
            delta_source: "w.1".into(),
            detected_at_ms: 15_500,
            worker_at_ms,
            heartbeat_requests,
            heartbeat_at_ms,
            in_flight_max: 8,
            rate_rps: 0.0,
        }
    }

    fn watermark(requests: u64, cut_at_ms: i64, peak_rps: f64) -> Watermark {
        Watermark {
            worker_id: "w.1".into(),
            seq: 10,
            requests,
            cut_at_ms,
            peak_rps,
            evicted_requests: 0,
        }
    }

    #[test]
    fn bounded_by_the_peak_rate_since_the_last_applied_interval() {
        // 1,000 req/s at its peak, died 150 ms after its last applied cut:
        // 150 requests, 188 with the margin.
        let record = bound(
            &lost(10_150, None),
            Some(&watermark(5_000, 10_000, 1_000.0)),
            10_000 - 5_500,
        );
        assert_eq!(record.received, 5_000);
        assert_eq!(record.unrecorded_max, 188 + 8);
        assert_eq!(record.at_s, 11.0);
        assert_eq!(record.delta_source, "w.1");
    }

    #[test]
    fn the_heartbeat_bound_wins_when_deltas_were_held_up() {
        // Deltas stopped arriving 8 s before the death (collector
        // unreachable), but a heartbeat 200 ms before it counted 9,000.
        let mark = watermark(4_000, 2_000, 1_000.0);
        let record = bound(&lost(10_000, Some((9_000, 9_800))), Some(&mark), 0);
        assert_eq!(record.unrecorded_max, 9_250 - 4_000 + 8);
        // Without the heartbeat: the delta bound alone.
        let record = bound(&lost(10_000, None), Some(&mark), 0);
        assert_eq!(record.unrecorded_max, 10_000 + 8);
    }

    #[test]
    fn a_source_never_heard_of_is_found_by_the_worker_id() {
        let mut unknown = lost(10_000, None);
        unknown.delta_source.clear();
        let mut flushed = watermark(10, 0, 1.0);
        flushed.worker_id = "w.0".into();
        let marks = [flushed, watermark(20, 0, 1.0)];
        let finals = [v1::WorkerFinal {
            worker_id: "w.0".into(),
            last_seq: 3,
            ..Default::default()
        }];
        let found = super::watermark(&unknown, &marks, &finals).map(|m| m.requests);
        assert_eq!(found, Some(20));
        // Named: only its own source.
        let named = lost(10_000, None);
        assert_eq!(
            super::watermark(&named, &marks, &[]).map(|m| m.requests),
            Some(20)
        );
        // Ambiguous: none.
        assert!(super::watermark(&unknown, &marks, &[]).is_none());
    }

    #[test]
    fn the_heartbeat_rate_bounds_a_worker_without_a_delta_rate() {
        let mut quick = lost(10_000, Some((300, 9_500)));
        quick.rate_rps = 2_000.0;
        let record = bound(&quick, None, 0);
        assert_eq!(record.unrecorded_max, 300 + 1_250 + 8);
    }

    #[test]
    fn a_flushed_worker_whose_last_deltas_never_came_is_missing_exactly_those() {
        let last = v1::WorkerFinal {
            worker_id: "w.1".into(),
            last_seq: 12,
            requests: 5_000,
            evicted_requests: 0,
        };
        let mut mark = watermark(4_000, 0, 1.0);
        mark.evicted_requests = 100;
        let record = unflushed(&last, Some(&mark), 30.0).expect("missing deltas");
        assert_eq!(
            (record.worker_id.as_str(), record.unrecorded_max),
            ("w", 900)
        );
        mark.seq = 12;
        assert!(unflushed(&last, Some(&mark), 30.0).is_none());
    }

    #[test]
    fn never_below_what_arrived_and_clocks_never_go_negative() {
        // The worker's clock estimate puts the death before the last cut.
        let record = bound(
            &lost(9_000, Some((100, 8_000))),
            Some(&watermark(700, 10_000, 50.0)),
            0,
        );
        assert_eq!(record.received, 700);
        assert_eq!(record.unrecorded_max, 8);
        // Nothing ever arrived: its heartbeat count and its in-flight bound.
        let record = bound(&lost(10_000, Some((300, 10_000))), None, 0);
        assert_eq!((record.received, record.unrecorded_max), (0, 308));
    }
}
