//! Fresh databases for tests: a new Postgres database per test (dropped
//! again when the guard is dropped, even after a panic) or a SQLite file in a
//! temporary directory.
//!
//! Postgres is reached through `DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`; test databases are created
//! next to the database that URL names.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{Store, StoreError};

/// The server tests create their databases on.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for as long as this guard does.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    postgres: Option<PostgresCleanup>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
struct PostgresCleanup {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty Postgres database with a unique name.
    pub async fn postgres() -> Result<Self, StoreError> {
        let admin_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let name = format!("cicada_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await?;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(Self {
            url: with_database(&admin_url, &name),
            postgres: Some(PostgresCleanup { admin_url, name }),
            _dir: None,
        })
    }

    /// A path for a SQLite database file in a new temporary directory.
    pub fn sqlite() -> Result<Self, StoreError> {
        let dir =
            tempfile::tempdir().map_err(|error| StoreError::Database(sqlx::Error::Io(error)))?;
        let url = format!("sqlite:{}", dir.path().join("cicada.db").display());
        Ok(Self {
            url,
            postgres: None,
            _dir: Some(dir),
        })
    }

    /// The URL to pass to [`connect`](crate::connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connects a store to this database (applying the migrations).
    pub async fn connect(&self) -> Result<Arc<dyn Store>, StoreError> {
        crate::connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(cleanup) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime (or during a panic): use a thread
        // with its own runtime rather than blocking the caller's.
        let result = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&cleanup.admin_url).await?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    cleanup.name
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(error)) = result {
            tracing::warn!(%error, "failed to drop test database");
        }
    }
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Expands each named `async fn test(db: TestDatabase)` of the calling test
/// file into a Postgres and a SQLite `#[tokio::test]` (modules `postgres`
/// and `sqlite`), so one test body runs on both stores.
#[macro_export]
macro_rules! both_databases {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = $crate::testing::TestDatabase::postgres().await.expect("create database");
                    super::$test(db).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = $crate::testing::TestDatabase::sqlite().expect("temp dir");
                    super::$test(db).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
