//! The per-minute rollup of ended runs (`run_minutes`, migration 0006),
//! whose SQL is the same on Postgres and SQLite: written in the transaction
//! that finishes a run (with the summaries, from one pass over its seconds)
//! or later for a run that ended without one, and read for windows.

/// Adds the rollup methods to a store type with a `pool` field; `$db` is
/// its sqlx database.
macro_rules! shared_rollup {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Merges every per-second row of the run into per-minute rows
            /// aligned to the second it started in and writes them with that
            /// origin, plus the per-endpoint summaries when `with_summaries`
            /// (finishing). The caller holds the run row and commits.
            pub(crate) async fn write_rollup(
                tx: &mut sqlx::Transaction<'static, $db>,
                run_id: &str,
                started_at_ms: i64,
                with_summaries: bool,
            ) -> Result<(), $crate::StoreError> {
                use $crate::convert::to_db;
                let indexes: Vec<i32> =
                    sqlx::query_scalar("SELECT idx FROM run_endpoints WHERE run_id = $1 ORDER BY idx")
                        .bind(run_id)
                        .fetch_all(&mut **tx)
                        .await?;
                let rows: Vec<(i64, i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_seconds WHERE run_id = $1",
                )
                .bind(run_id)
                .fetch_all(&mut **tx)
                .await?;
                let origin = started_at_ms.div_euclid(1000);
                let mut builder = $crate::convert::MinutesBuilder::new(origin);
                for (second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected) in rows {
                    builder.add(
                        second,
                        endpoint as u32,
                        &(requests, failures, cancelled, bytes, histogram),
                        uncorrected.as_deref(),
                    )?;
                }
                let indexes: Vec<u32> = indexes.into_iter().map(|i| i as u32).collect();
                let (minutes, summaries) = builder.finish(&indexes)?;
                if with_summaries {
                    for summary in summaries {
                        sqlx::query(
                            "INSERT INTO run_summaries (run_id, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(run_id)
                        .bind(summary.endpoint as i32)
                        .bind(to_db(summary.counts.requests))
                        .bind(to_db(summary.counts.failures))
                        .bind(to_db(summary.counts.cancelled))
                        .bind(to_db(summary.counts.bytes))
                        .bind($crate::convert::encode(&summary.histogram)?)
                        .bind($crate::convert::encode_optional(summary.uncorrected.as_ref())?)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                for minute in minutes {
                    sqlx::query(
                        "INSERT INTO run_minutes (run_id, minute_start, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(run_id)
                    .bind(minute.minute_start)
                    .bind(minute.endpoint as i32)
                    .bind(to_db(minute.counts.requests))
                    .bind(to_db(minute.counts.failures))
                    .bind(to_db(minute.counts.cancelled))
                    .bind(to_db(minute.counts.bytes))
                    .bind($crate::convert::encode_uncompressed(&minute.histogram)?)
                    .bind(
                        minute
                            .uncorrected
                            .as_ref()
                            .map($crate::convert::encode_uncompressed)
                            .transpose()?,
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                sqlx::query("UPDATE runs SET minutes_origin = $2 WHERE id = $1")
                    .bind(run_id)
                    .bind(origin)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Builds the rollup of an ended run that has none.
            pub(crate) async fn write_roll_up_minutes(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                run_id: &str,
            ) -> Result<bool, $crate::StoreError> {
                // A no-op update that locks the run row (Postgres), so two
                // roll-ups of one run cannot both write.
                let locked = sqlx::query("UPDATE runs SET minutes_origin = minutes_origin WHERE id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound(run_id.to_owned()));
                }
                let (status, started_at_ms, origin): (String, i64, Option<i64>) = sqlx::query_as(
                    "SELECT status, started_at_ms, minutes_origin FROM runs WHERE id = $1",
                )
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
                if status == $crate::RunStatus::Running.as_str() {
                    return Err($crate::StoreError::Invalid(format!(
                        "run {run_id} is still running; its minutes are rolled up when it finishes"
                    )));
                }
                if origin.is_some() {
                    return Ok(false);
                }
                Self::write_rollup(&mut tx, run_id, started_at_ms, false).await?;
                tx.commit().await?;
                Ok(true)
            }

            pub(crate) async fn read_minutes_between(
                &self,
                run_id: &str,
                from_second: i64,
                to_second: i64,
            ) -> Result<Option<$crate::MinuteSpan>, $crate::StoreError> {
                let origin: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT minutes_origin FROM runs WHERE id = $1")
                        .bind(run_id)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(Some(origin)) = origin else {
                    return Ok(None);
                };
                let (first, end) = $crate::convert::whole_minutes(origin, from_second, to_second);
                let rows: Vec<(i64, i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT minute_start, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_minutes WHERE run_id = $1 AND minute_start >= $2 AND minute_start < $3
                     ORDER BY minute_start, endpoint",
                )
                .bind(run_id)
                .bind(first)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
                let rows = rows
                    .into_iter()
                    .map(
                        |(minute_start, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected)| {
                            let row: $crate::convert::CountsRow = (requests, failures, cancelled, bytes, histogram);
                            Ok($crate::MinuteRow {
                                minute_start,
                                endpoint: endpoint as u32,
                                counts: $crate::convert::counts_from_row(&row),
                                histogram: $crate::convert::decode(&row.4)?,
                                uncorrected: $crate::convert::decode_optional(uncorrected.as_deref())?,
                            })
                        },
                    )
                    .collect::<Result<Vec<_>, $crate::StoreError>>()?;
                Ok(Some($crate::MinuteSpan {
                    from_second: first,
                    to_second: end,
                    rows,
                }))
            }
        }
    };
}

pub(crate) use shared_rollup;
