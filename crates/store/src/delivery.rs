//! The per-source delivery state both databases keep (migration 0008): a
//! source's watermark row with what was received from it, read and written
//! inside `apply_delta`'s transaction, and the lost workers written by
//! `finish_run`. `$lock` is appended to the watermark read (`FOR UPDATE` on
//! Postgres; SQLite serializes writers instead).

macro_rules! shared_delivery {
    ($store:ty, $db:ty, $lock:literal, $share:literal) => {
        impl $store {
            /// The delta's source watermark, created at 0 if missing.
            async fn lock_watermark(
                tx: &mut sqlx::Transaction<'static, $db>,
                delta: &$crate::Delta,
            ) -> Result<$crate::Watermark, $crate::StoreError> {
                Self::lock_watermark_of(tx, &delta.run_id, &delta.worker_id).await
            }

            /// The watermark of source `worker_id` in `run_id`, created at 0
            /// if missing (locked on Postgres).
            async fn lock_watermark_of(
                tx: &mut sqlx::Transaction<'static, $db>,
                run_id: &str,
                worker_id: &str,
            ) -> Result<$crate::Watermark, $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO run_watermarks (run_id, worker_id, seq) VALUES ($1, $2, 0)
                     ON CONFLICT (run_id, worker_id) DO NOTHING",
                )
                .bind(run_id)
                .bind(worker_id)
                .execute(&mut **tx)
                .await?;
                let (seq, requests, cut_at_ms, peak_rps, evicted): (i64, i64, i64, f64, i64) =
                    sqlx::query_as(concat!(
                        "SELECT seq, requests, cut_at_ms, peak_rps, evicted_requests
                         FROM run_watermarks WHERE run_id = $1 AND worker_id = $2",
                        $lock
                    ))
                    .bind(run_id)
                    .bind(worker_id)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok($crate::Watermark {
                    worker_id: worker_id.to_owned(),
                    seq: $crate::convert::from_db(seq),
                    requests: $crate::convert::from_db(requests),
                    cut_at_ms,
                    peak_rps,
                    evicted_requests: $crate::convert::from_db(evicted),
                })
            }

            /// Moves the delta's source watermark to `next`.
            async fn write_watermark(
                tx: &mut sqlx::Transaction<'static, $db>,
                run_id: &str,
                next: &$crate::Watermark,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "UPDATE run_watermarks
                     SET seq = $3, requests = $4, cut_at_ms = $5, peak_rps = $6, evicted_requests = $7
                     WHERE run_id = $1 AND worker_id = $2",
                )
                .bind(run_id)
                .bind(&next.worker_id)
                .bind($crate::convert::to_db(next.seq))
                .bind($crate::convert::to_db(next.requests))
                .bind(next.cut_at_ms)
                .bind(next.peak_rps)
                .bind($crate::convert::to_db(next.evicted_requests))
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Applies `deltas` in one transaction (the caller begins and
            /// commits it): each decided against its source's watermark in
            /// order (several of one source in one batch advance it in
            /// turn), the applied ones merged per (run, second) and written
            /// once per row, every touched watermark written once. A delta
            /// that is refused (a gap, a finished or unknown run, a malformed
            /// one) has its error in its place and changes nothing; an error
            /// while writing fails the whole batch (the caller rolls back).
            async fn apply_batch_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                deltas: &[$crate::Delta],
            ) -> Result<Vec<Result<$crate::ApplyOutcome, $crate::StoreError>>, $crate::StoreError> {
                use std::collections::{BTreeMap, HashMap};
                let mut statuses: HashMap<&str, Option<String>> = HashMap::new();
                let runs: std::collections::BTreeSet<&str> =
                    deltas.iter().map(|delta| delta.run_id.as_str()).collect();
                for run_id in runs {
                    let status: Option<String> = sqlx::query_scalar(concat!(
                        "SELECT status FROM runs WHERE id = $1",
                        $share
                    ))
                    .bind(run_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                    statuses.insert(run_id, status);
                }
                // Locked in key order: two collectors' batches never wait
                // on each other in a cycle.
                let mut marks: BTreeMap<(&str, &str), ($crate::Watermark, bool)> = BTreeMap::new();
                for delta in deltas {
                    marks.entry((delta.run_id.as_str(), delta.worker_id.as_str())).or_insert_with(|| {
                        ($crate::Watermark::default(), false)
                    });
                }
                for ((run_id, worker_id), (mark, _)) in marks.iter_mut() {
                    // An unknown run has no watermark (its deltas are refused).
                    if statuses[run_id].is_some() {
                        *mark = Self::lock_watermark_of(tx, run_id, worker_id).await?;
                    }
                }
                let mut results = Vec::with_capacity(deltas.len());
                let mut applied: Vec<&$crate::Delta> = Vec::new();
                for delta in deltas {
                    let key = (delta.run_id.as_str(), delta.worker_id.as_str());
                    let decided = $crate::convert::sorted_endpoints(delta).and_then(|_| {
                        let status = statuses[delta.run_id.as_str()]
                            .as_deref()
                            .ok_or_else(|| $crate::StoreError::NotFound(delta.run_id.clone()))?;
                        $crate::convert::decide(delta, &marks[&key].0, status)
                    });
                    results.push(match decided {
                        Err(error) => Err(error),
                        Ok($crate::convert::Advance::Duplicate) => Ok($crate::ApplyOutcome::Duplicate),
                        Ok($crate::convert::Advance::Apply { next, marker }) => {
                            marks.insert(key, (next, true));
                            if !marker {
                                applied.push(delta);
                            }
                            Ok($crate::ApplyOutcome::Applied)
                        }
                    });
                }
                // Lock order, the same in every transaction of every
                // collector (so two never wait on each other in a cycle):
                // the run rows, the watermarks by (run, worker), then per
                // (run, second) in order its rows by endpoint and its users
                // row, then per run its failure rows by (endpoint, kind) and
                // its check rows by (endpoint, check). Failures and checks
                // are run-wide rows: written per second, they would be
                // locked between two seconds' rows.
                let mut groups = $crate::convert::merge_by_second(&applied)?;
                let tails = $crate::convert::take_run_tails(&mut groups);
                for group in &groups {
                    let endpoints = $crate::convert::sorted_endpoints(group)?;
                    match merge_delta(tx, group, &endpoints).await {
                        Err($crate::StoreError::Database(error))
                            if $crate::error::is_foreign_key_violation(&error) =>
                        {
                            return Err($crate::StoreError::Invalid(format!(
                                "a delta of second {} refers to an endpoint outside the table of run {}",
                                group.second, group.run_id
                            )));
                        }
                        other => other?,
                    }
                }
                for tail in &tails {
                    let endpoints: Vec<&$crate::EndpointDelta> = tail.endpoints.iter().collect();
                    match merge_failures(tx, &tail.run_id, &endpoints).await {
                        Err($crate::StoreError::Database(error))
                            if $crate::error::is_foreign_key_violation(&error) =>
                        {
                            return Err($crate::StoreError::Invalid(format!(
                                "a failure refers to an endpoint outside the table of run {}",
                                tail.run_id
                            )));
                        }
                        other => other?,
                    }
                    Self::merge_checks(tx, tail).await?;
                }
                for ((run_id, worker_id), (mark, touched)) in &marks {
                    if *touched {
                        Self::write_watermark(tx, run_id, mark).await?;
                    } else if mark.seq == 0 && statuses[run_id].is_some() {
                        // Created above for a source none of whose deltas
                        // applied (a gap): as if never seen, like a refused
                        // `apply_delta` that rolls back.
                        sqlx::query(
                            "DELETE FROM run_watermarks WHERE run_id = $1 AND worker_id = $2 AND seq = 0",
                        )
                        .bind(run_id)
                        .bind(worker_id)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                Ok(results)
            }

            /// Records the workers lost without their final flush.
            async fn write_lost_workers(
                tx: &mut sqlx::Transaction<'static, $db>,
                run_id: &str,
                lost_workers: &[$crate::LostWorkerRecord],
            ) -> Result<(), $crate::StoreError> {
                for lost in lost_workers {
                    sqlx::query(
                        "INSERT INTO run_lost_workers (run_id, worker_id, delta_source, at_s, received, unrecorded_max)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(run_id)
                    .bind(&lost.worker_id)
                    .bind(&lost.delta_source)
                    .bind(lost.at_s)
                    .bind($crate::convert::to_db(lost.received))
                    .bind($crate::convert::to_db(lost.unrecorded_max))
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use shared_delivery;
