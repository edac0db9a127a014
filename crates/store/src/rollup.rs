//! The rollup of ended runs, whose SQL is the same on Postgres and SQLite:
//! per-minute rows (`run_minutes`, migration 0006) and per-10-second rows
//! (`run_tens`, 0007), written in the transaction that finishes a run (with
//! the summaries, from one pass over its seconds) or later for a run that
//! ended without a level, and read for windows.

/// Which rows `write_rollup` writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RollupLevels {
    pub summaries: bool,
    pub minutes: bool,
    pub tens: bool,
}

/// Rows per multi-row `INSERT` of rollup rows (9 binds each, well under
/// both databases' limits on binds per statement).
pub(crate) const INSERT_CHUNK: usize = 500;

/// Adds the rollup methods to a store type with a `pool` field; `$db` is
/// its sqlx database.
macro_rules! shared_rollup {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Merges every per-second row of the run into 10-second blocks
            /// and minutes aligned to the second it started in and writes
            /// the `levels` asked for, with that origin (plus the
            /// per-endpoint summaries when finishing). The caller holds the
            /// run row and commits.
            pub(crate) async fn write_rollup(
                tx: &mut sqlx::Transaction<'static, $db>,
                run_id: &str,
                started_at_ms: i64,
                levels: $crate::rollup::RollupLevels,
            ) -> Result<(), $crate::StoreError> {
                use $crate::convert::to_db;
                let indexes: Vec<i32> =
                    sqlx::query_scalar("SELECT idx FROM run_endpoints WHERE run_id = $1 ORDER BY idx")
                        .bind(run_id)
                        .fetch_all(&mut **tx)
                        .await?;
                let rows: Vec<(i64, i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_seconds WHERE run_id = $1 ORDER BY second, endpoint",
                )
                .bind(run_id)
                .fetch_all(&mut **tx)
                .await?;
                let origin = started_at_ms.div_euclid(1000);
                let mut builder = $crate::convert::RollupBuilder::new(origin);
                for (second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected) in rows {
                    builder.add(
                        second,
                        endpoint as u32,
                        &(requests, failures, cancelled, bytes, histogram),
                        uncorrected.as_deref(),
                    )?;
                }
                let indexes: Vec<u32> = indexes.into_iter().map(|i| i as u32).collect();
                let rollup = builder.finish(&indexes)?;
                if levels.summaries {
                    for summary in rollup.totals {
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
                let tables = [
                    (levels.minutes, "run_minutes (run_id, minute_start", &rollup.minutes),
                    (levels.tens, "run_tens (run_id, block_start", &rollup.tens),
                ];
                for (write, table, blocks) in tables {
                    if !write {
                        continue;
                    }
                    for chunk in blocks.chunks($crate::rollup::INSERT_CHUNK) {
                        let mut insert = sqlx::QueryBuilder::<$db>::new(format!(
                            "INSERT INTO {table}, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram) "
                        ));
                        insert.push_values(chunk, |mut row, block| {
                            row.push_bind(run_id.to_owned())
                                .push_bind(block.start)
                                .push_bind(block.endpoint as i32)
                                .push_bind(to_db(block.counts.requests))
                                .push_bind(to_db(block.counts.failures))
                                .push_bind(to_db(block.counts.cancelled))
                                .push_bind(to_db(block.counts.bytes))
                                .push_bind(block.histogram.clone())
                                .push_bind(block.uncorrected.clone());
                        });
                        insert.build().execute(&mut **tx).await?;
                    }
                }
                sqlx::query(
                    "UPDATE runs SET minutes_origin = COALESCE(minutes_origin, $2), tens_origin = COALESCE(tens_origin, $2)
                     WHERE id = $1",
                )
                .bind(run_id)
                .bind(origin)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Builds the rollup levels an ended run lacks.
            pub(crate) async fn write_roll_up(
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
                let (status, started_at_ms, minutes_origin, tens_origin): (String, i64, Option<i64>, Option<i64>) =
                    sqlx::query_as("SELECT status, started_at_ms, minutes_origin, tens_origin FROM runs WHERE id = $1")
                        .bind(run_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if status == $crate::RunStatus::Running.as_str() {
                    return Err($crate::StoreError::Invalid(format!(
                        "run {run_id} is still running; its rollup is built when it finishes"
                    )));
                }
                let levels = $crate::rollup::RollupLevels {
                    summaries: false,
                    minutes: minutes_origin.is_none(),
                    tens: tens_origin.is_none(),
                };
                if !levels.minutes && !levels.tens {
                    return Ok(false);
                }
                Self::write_rollup(&mut tx, run_id, started_at_ms, levels).await?;
                tx.commit().await?;
                Ok(true)
            }

            pub(crate) async fn read_rollup_between(
                &self,
                run_id: &str,
                from_second: i64,
                to_second: i64,
            ) -> Result<Option<$crate::RollupSpan>, $crate::StoreError> {
                let origins: Option<(Option<i64>, Option<i64>)> =
                    sqlx::query_as("SELECT minutes_origin, tens_origin FROM runs WHERE id = $1")
                        .bind(run_id)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some((Some(origin), tens_origin)) = origins else {
                    return Ok(None);
                };
                let with_tens = tens_origin == Some(origin);
                let bounds = $crate::convert::RollupBounds::new(origin, from_second, to_second, with_tens);
                // Minutes inside, then the 10-second blocks on either side
                // (empty ranges without that level): one round trip.
                let rows: Vec<(i64, i64, i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT minute_start AS start, CAST(60 AS BIGINT) AS span, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_minutes WHERE run_id = $1 AND minute_start >= $2 AND minute_start < $3
                     UNION ALL
                     SELECT block_start, CAST(10 AS BIGINT), endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_tens WHERE run_id = $1 AND block_start >= $4 AND block_start < $2
                     UNION ALL
                     SELECT block_start, CAST(10 AS BIGINT), endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_tens WHERE run_id = $1 AND block_start >= $3 AND block_start < $5
                     ORDER BY 1, 3",
                )
                .bind(run_id)
                .bind(bounds.minutes.0)
                .bind(bounds.minutes.1)
                .bind(bounds.tens.0)
                .bind(bounds.tens.1)
                .fetch_all(&self.pool)
                .await?;
                let rows = rows
                    .into_iter()
                    .map(
                        |(start, span_s, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected)| {
                            let row: $crate::convert::CountsRow = (requests, failures, cancelled, bytes, histogram);
                            Ok($crate::RollupRow {
                                start,
                                span_s,
                                endpoint: endpoint as u32,
                                counts: $crate::convert::counts_from_row(&row),
                                histogram: $crate::convert::decode(&row.4)?,
                                uncorrected: $crate::convert::decode_optional(uncorrected.as_deref())?,
                            })
                        },
                    )
                    .collect::<Result<Vec<_>, $crate::StoreError>>()?;
                Ok(Some($crate::RollupSpan {
                    from_second: bounds.tens.0,
                    to_second: bounds.tens.1,
                    rows,
                }))
            }
        }
    };
}

pub(crate) use shared_rollup;
