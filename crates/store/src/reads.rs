//! Reads whose SQL is the same on Postgres and SQLite, written once and
//! expanded into each implementation (sqlx infers the database from the
//! pool, so the same text type-checks against both).

/// Adds the shared read methods to a store type with a `pool` field.
macro_rules! shared_reads {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn read_run(&self, run_id: &str) -> Result<Option<$crate::RunRecord>, $crate::StoreError> {
                let sql = format!("SELECT {} FROM runs WHERE id = $1", $crate::convert::RUN_COLUMNS);
                let row: Option<$crate::convert::RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map($crate::convert::run_from_row).transpose()
            }
            pub(crate) async fn read_endpoints(&self, run_id: &str) -> Result<Vec<$crate::Endpoint>, $crate::StoreError> {
                let rows: Vec<(i32, String, String)> = sqlx::query_as(
                    "SELECT idx, method, name FROM run_endpoints WHERE run_id = $1 ORDER BY idx",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(index, method, name)| $crate::Endpoint {
                        index: index as u32,
                        method,
                        name,
                    })
                    .collect())
            }
            pub(crate) async fn read_summaries(&self, run_id: &str) -> Result<Vec<$crate::EndpointTotals>, $crate::StoreError> {
                let rows: Vec<(i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_summaries WHERE run_id = $1 ORDER BY endpoint",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(
                        |(endpoint, requests, failures, cancelled, bytes, histogram, uncorrected)| {
                            let row: $crate::convert::CountsRow = (requests, failures, cancelled, bytes, histogram);
                            Ok($crate::EndpointTotals {
                                endpoint: endpoint as u32,
                                counts: $crate::convert::counts_from_row(&row),
                                histogram: $crate::convert::decode(&row.4)?,
                                uncorrected: $crate::convert::decode_optional(uncorrected.as_deref())?,
                            })
                        },
                    )
                    .collect()
            }
            pub(crate) async fn read_seconds(
                &self,
                run_id: &str,
                from_second: Option<i64>,
            ) -> Result<Vec<$crate::SecondRow>, $crate::StoreError> {
                // The open-ended window (shared_history's query and row mapping).
                self.read_seconds_between(run_id, from_second.unwrap_or(i64::MIN), i64::MAX)
                    .await
            }

            pub(crate) async fn read_active_users(
                &self,
                run_id: &str,
                from_second: Option<i64>,
            ) -> Result<Vec<$crate::ActiveUsers>, $crate::StoreError> {
                let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
                    "SELECT second, active_users, dropped FROM run_users
                     WHERE run_id = $1 AND second >= $2 ORDER BY second",
                )
                .bind(run_id)
                .bind(from_second.unwrap_or(i64::MIN))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(second, users, dropped)| $crate::ActiveUsers {
                        second,
                        users: $crate::convert::from_db(users),
                        dropped: $crate::convert::from_db(dropped),
                    })
                    .collect())
            }
            pub(crate) async fn read_dropped(&self, run_id: &str) -> Result<u64, $crate::StoreError> {
                // CAST: SUM of BIGINT is NUMERIC on Postgres.
                let dropped: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(dropped), 0) AS BIGINT) FROM run_users WHERE run_id = $1",
                )
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::convert::from_db(dropped))
            }
            pub(crate) async fn read_failures(&self, run_id: &str) -> Result<Vec<$crate::FailureRecord>, $crate::StoreError> {
                let rows: Vec<(i32, String, i64, String)> = sqlx::query_as(
                    "SELECT endpoint, kind, count, last_message FROM run_failures
                     WHERE run_id = $1 ORDER BY endpoint, kind",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(endpoint, kind, count, last_message)| $crate::FailureRecord {
                        endpoint: endpoint as u32,
                        kind,
                        count: $crate::convert::from_db(count),
                        last_message,
                    })
                    .collect())
            }
            pub(crate) async fn read_thresholds(&self, run_id: &str) -> Result<Vec<$crate::ThresholdRecord>, $crate::StoreError> {
                let rows: Vec<(i32, Option<String>, String, bool, i64, Option<f64>, Option<bool>)> = sqlx::query_as(
                    "SELECT idx, endpoint, expression, abort_on_fail, delay_ms, observed, passed
                     FROM run_thresholds WHERE run_id = $1 ORDER BY idx",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(index, endpoint, expression, abort_on_fail, delay_ms, observed, passed)| $crate::ThresholdRecord {
                        index: index as u32,
                        threshold: $crate::ThresholdDef {
                            expression,
                            endpoint,
                            abort_on_fail,
                            delay_ms: $crate::convert::from_db(delay_ms),
                        },
                        observed,
                        passed,
                    })
                    .collect())
            }
            pub(crate) async fn read_watermarks(&self, run_id: &str) -> Result<Vec<$crate::Watermark>, $crate::StoreError> {
                let rows: Vec<(String, i64, i64, i64, f64, i64)> = sqlx::query_as(
                    "SELECT worker_id, seq, requests, cut_at_ms, peak_rps, evicted_requests
                     FROM run_watermarks WHERE run_id = $1 ORDER BY worker_id",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(worker_id, seq, requests, cut_at_ms, peak_rps, evicted)| $crate::Watermark {
                        worker_id,
                        seq: $crate::convert::from_db(seq),
                        requests: $crate::convert::from_db(requests),
                        cut_at_ms,
                        peak_rps,
                        evicted_requests: $crate::convert::from_db(evicted),
                    })
                    .collect())
            }

            pub(crate) async fn read_lost_workers(&self, run_id: &str) -> Result<Vec<$crate::LostWorkerRecord>, $crate::StoreError> {
                let rows: Vec<(String, String, f64, i64, i64)> = sqlx::query_as(
                    "SELECT worker_id, delta_source, at_s, received, unrecorded_max
                     FROM run_lost_workers WHERE run_id = $1 ORDER BY worker_id, delta_source",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(worker_id, delta_source, at_s, received, unrecorded_max)| $crate::LostWorkerRecord {
                        worker_id,
                        delta_source,
                        at_s,
                        received: $crate::convert::from_db(received),
                        unrecorded_max: $crate::convert::from_db(unrecorded_max),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use shared_reads;
