//! Response checks (migration 0009): each run's check table with pass/fail
//! counts, written with the run and added to inside `apply_delta`'s
//! transaction. The SQL is the same on both databases (one macro).

macro_rules! shared_checks {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Writes the run's check table (counts at 0).
            async fn write_check_defs(
                tx: &mut sqlx::Transaction<'static, $db>,
                run: &$crate::NewRun,
            ) -> Result<(), $crate::StoreError> {
                for check in &run.checks {
                    sqlx::query(
                        "INSERT INTO run_checks (run_id, idx, endpoint, name) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&run.id)
                    .bind(check.index as i32)
                    .bind(check.endpoint as i32)
                    .bind(&check.name)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Adds a delta's check outcomes; a check outside the run's
            /// table is [`StoreError::Invalid`] (the caller rolls back).
            async fn merge_checks(
                tx: &mut sqlx::Transaction<'static, $db>,
                delta: &$crate::Delta,
            ) -> Result<(), $crate::StoreError> {
                for endpoint in &delta.endpoints {
                    for check in &endpoint.checks {
                        let updated = sqlx::query(
                            "UPDATE run_checks SET passed = passed + $3, failed = failed + $4
                             WHERE run_id = $1 AND idx = $2 AND endpoint = $5",
                        )
                        .bind(&delta.run_id)
                        .bind(check.check as i32)
                        .bind($crate::convert::to_db(check.passed))
                        .bind($crate::convert::to_db(check.failed))
                        .bind(endpoint.endpoint as i32)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                        if updated == 0 {
                            return Err($crate::StoreError::Invalid(format!(
                                "delta {} of worker {} counts check {} of endpoint {}, which is not in the check table of run {}",
                                delta.seq, delta.worker_id, check.check, endpoint.endpoint, delta.run_id
                            )));
                        }
                    }
                }
                Ok(())
            }

            pub(crate) async fn read_checks(
                &self,
                run_id: &str,
            ) -> Result<Vec<$crate::CheckTotals>, $crate::StoreError> {
                let rows: Vec<(i32, i32, String, i64, i64)> = sqlx::query_as(
                    "SELECT idx, endpoint, name, passed, failed FROM run_checks
                     WHERE run_id = $1 ORDER BY idx",
                )
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(index, endpoint, name, passed, failed)| $crate::CheckTotals {
                        def: $crate::CheckDef {
                            index: index as u32,
                            endpoint: endpoint as u32,
                            name,
                        },
                        passed: $crate::convert::from_db(passed),
                        failed: $crate::convert::from_db(failed),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use shared_checks;
