//! Target resource samples: SQL shared by Postgres and SQLite, expanded into
//! each implementation like `reads` (SQLite callers hold its writer lock).

/// Adds `write_target_sample` and `read_target_samples` to a store type with
/// a `pool` field.
macro_rules! target_samples {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn write_target_sample(
                &self,
                run_id: &str,
                sample: &$crate::TargetSample,
            ) -> Result<(), $crate::StoreError> {
                // Inserted through the run's row: nothing for an unknown run.
                let done = sqlx::query(
                    "INSERT INTO run_target_samples (run_id, second, value)
                     SELECT id, $2, $3 FROM runs WHERE id = $1
                     ON CONFLICT (run_id, second) DO UPDATE SET value = excluded.value",
                )
                .bind(run_id)
                .bind(sample.second)
                .bind(sample.value)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound(run_id.to_owned()));
                }
                Ok(())
            }

            pub(crate) async fn read_target_samples(
                &self,
                run_id: &str,
            ) -> Result<Vec<$crate::TargetSample>, $crate::StoreError> {
                let rows: Vec<(i64, f64)> = sqlx::query_as(
                    "SELECT second, value FROM run_target_samples WHERE run_id = $1 ORDER BY second",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(second, value)| $crate::TargetSample { second, value })
                    .collect())
            }
        }
    };
}

pub(crate) use target_samples;
