//! History writes and reads whose SQL is the same on Postgres and SQLite:
//! labelling and deleting runs, threshold results, per-second rows within a window and the
//! latest passing run of a scenario. Each implementation begins the write
//! transaction itself (with its own locking) and hands it over.

/// Adds the shared history methods to a store type with a `pool` field;
/// `$db` is its sqlx database.
macro_rules! shared_history {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Records the final result of each threshold of an ended run.
            pub(crate) async fn write_threshold_results(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                run_id: &str,
                results: &[$crate::ThresholdOutcome],
            ) -> Result<(), $crate::StoreError> {
                // A no-op update that reads the status and locks the run
                // row (Postgres) until the results are in.
                let status: Option<String> = sqlx::query_scalar(
                    "UPDATE runs SET status = status WHERE id = $1 RETURNING status",
                )
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
                match status {
                    None => return Err($crate::StoreError::NotFound(run_id.to_owned())),
                    Some(status) if status == $crate::RunStatus::Running.as_str() => {
                        return Err($crate::StoreError::Invalid(format!(
                            "run {run_id} is still running; threshold results are recorded once it has ended"
                        )));
                    }
                    Some(_) => {}
                }
                for result in results {
                    let updated = sqlx::query(
                        "UPDATE run_thresholds SET observed = $3, passed = $4 WHERE run_id = $1 AND idx = $2",
                    )
                    .bind(run_id)
                    .bind(i32::try_from(result.index).unwrap_or(i32::MAX))
                    .bind(result.observed)
                    .bind(result.passed)
                    .execute(&mut *tx)
                    .await?;
                    if updated.rows_affected() != 1 {
                        return Err($crate::StoreError::Invalid(format!(
                            "run {run_id} has no threshold {}",
                            result.index
                        )));
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            /// Sets (`Some`) or removes (`None`) one label, keeping the
            /// `labels_json` copy on the run row in step with `run_labels`.
            pub(crate) async fn write_label(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                run_id: &str,
                key: &str,
                value: Option<&str>,
            ) -> Result<$crate::RunRecord, $crate::StoreError> {
                $crate::convert::check_label_key(key)?;
                // A no-op update that locks the run row (Postgres) so two
                // label changes of one run cannot interleave.
                let locked = sqlx::query("UPDATE runs SET labels_json = labels_json WHERE id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound(run_id.to_owned()));
                }
                match value {
                    Some(value) => {
                        sqlx::query(
                            "INSERT INTO run_labels (run_id, key, value) VALUES ($1, $2, $3)
                             ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value",
                        )
                        .bind(run_id)
                        .bind(key)
                        .bind(value)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM run_labels WHERE run_id = $1 AND key = $2")
                            .bind(run_id)
                            .bind(key)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                let labels: Vec<(String, String)> =
                    sqlx::query_as("SELECT key, value FROM run_labels WHERE run_id = $1")
                        .bind(run_id)
                        .fetch_all(&mut *tx)
                        .await?;
                let labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
                sqlx::query("UPDATE runs SET labels_json = $2 WHERE id = $1")
                    .bind(run_id)
                    .bind($crate::convert::labels_to_json(&labels))
                    .execute(&mut *tx)
                    .await?;
                let sql = format!("SELECT {} FROM runs WHERE id = $1", $crate::convert::RUN_COLUMNS);
                let row: $crate::convert::RunRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                $crate::convert::run_from_row(row)
            }

            /// Deletes an ended run; every table refers to `runs` (directly
            /// or through `run_endpoints`) with `ON DELETE CASCADE`.
            pub(crate) async fn write_delete(
                &self,
                mut tx: sqlx::Transaction<'static, $db>,
                run_id: &str,
            ) -> Result<(), $crate::StoreError> {
                let status: Option<String> = sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match status {
                    None => return Err($crate::StoreError::NotFound(run_id.to_owned())),
                    Some(status) if status == $crate::RunStatus::Running.as_str() => {
                        return Err($crate::StoreError::Invalid(format!(
                            "run {run_id} is still running; only finished or failed runs can be deleted"
                        )));
                    }
                    Some(_) => {}
                }
                sqlx::query("DELETE FROM runs WHERE id = $1 AND status <> 'running'")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn read_seconds_between(
                &self,
                run_id: &str,
                from_second: i64,
                to_second: i64,
            ) -> Result<Vec<$crate::SecondRow>, $crate::StoreError> {
                let rows: Vec<(i64, i32, i64, i64, i64, i64, Vec<u8>, Option<Vec<u8>>)> = sqlx::query_as(
                    "SELECT second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram
                     FROM run_seconds WHERE run_id = $1 AND second >= $2 AND second < $3
                     ORDER BY second, endpoint",
                )
                .bind(run_id)
                .bind(from_second)
                .bind(to_second)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(
                        |(second, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected)| {
                            let row: $crate::convert::CountsRow = (requests, failures, cancelled, bytes, histogram);
                            Ok($crate::SecondRow {
                                second,
                                endpoint: endpoint as u32,
                                counts: $crate::convert::counts_from_row(&row),
                                histogram: $crate::convert::decode(&row.4)?,
                                uncorrected: $crate::convert::decode_optional(uncorrected.as_deref())?,
                            })
                        },
                    )
                    .collect()
            }

            pub(crate) async fn read_latest_passing(
                &self,
                scenario_name: &str,
                started_before_ms: i64,
            ) -> Result<Option<$crate::RunRecord>, $crate::StoreError> {
                // Served by runs_scenario_status_started_idx (0004_history).
                let sql = format!(
                    "SELECT {} FROM runs
                     WHERE scenario_name = $1 AND status = 'finished' AND started_at_ms < $2
                       AND error IS NULL
                       AND NOT EXISTS (SELECT 1 FROM run_thresholds t
                                       WHERE t.run_id = runs.id AND (t.passed IS NULL OR NOT t.passed))
                     ORDER BY started_at_ms DESC, id DESC
                     LIMIT 1",
                    $crate::convert::RUN_COLUMNS
                );
                let row: Option<$crate::convert::RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(scenario_name)
                    .bind(started_before_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map($crate::convert::run_from_row).transpose()
            }
        }
    };
}

pub(crate) use shared_history;
