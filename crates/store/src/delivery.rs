//! The per-source delivery state both databases keep (migration 0008): a
//! source's watermark row with what was received from it, read and written
//! inside `apply_delta`'s transaction, and the lost workers written by
//! `finish_run`. `$lock` is appended to the watermark read (`FOR UPDATE` on
//! Postgres; SQLite serializes writers instead).

macro_rules! shared_delivery {
    ($store:ty, $db:ty, $lock:literal) => {
        impl $store {
            /// The delta's source watermark, created at 0 if missing.
            async fn lock_watermark(
                tx: &mut sqlx::Transaction<'static, $db>,
                delta: &$crate::Delta,
            ) -> Result<$crate::Watermark, $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO run_watermarks (run_id, worker_id, seq) VALUES ($1, $2, 0)
                     ON CONFLICT (run_id, worker_id) DO NOTHING",
                )
                .bind(&delta.run_id)
                .bind(&delta.worker_id)
                .execute(&mut **tx)
                .await?;
                let (seq, requests, cut_at_ms, peak_rps, evicted): (i64, i64, i64, f64, i64) =
                    sqlx::query_as(concat!(
                        "SELECT seq, requests, cut_at_ms, peak_rps, evicted_requests
                         FROM run_watermarks WHERE run_id = $1 AND worker_id = $2",
                        $lock
                    ))
                    .bind(&delta.run_id)
                    .bind(&delta.worker_id)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok($crate::Watermark {
                    worker_id: delta.worker_id.clone(),
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
