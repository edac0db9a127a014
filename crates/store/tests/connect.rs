//! `connect` picks the database by URL and applies the migrations.

use cicada_store::{NewRun, StoreError, check_database_url, connect};

fn run(id: &str) -> NewRun {
    NewRun {
        id: id.to_owned(),
        scenario_name: "s".to_owned(),
        scenario_yaml: String::new(),
        host: String::new(),
        config_json: "{}".to_owned(),
        labels: Default::default(),
        started_at_ms: 0,
        endpoints: Vec::new(),
        thresholds: Vec::new(),
        checks: Vec::new(),
    }
}

#[tokio::test]
async fn a_plain_path_is_a_sqlite_file_created_if_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.db");
    let store = connect(path.to_str().unwrap()).await.unwrap();
    store.create_run(&run("r1")).await.unwrap();
    assert!(path.exists());
    drop(store);
    // Reopening applies no migration twice and sees the data.
    let store = connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert!(store.get_run("r1").await.unwrap().is_some());
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = connect("sqlite::memory:").await.unwrap();
    store.create_run(&run("r1")).await.unwrap();
    assert!(store.get_run("r1").await.unwrap().is_some());
}

#[tokio::test]
async fn unknown_schemes_are_rejected() {
    for url in ["mysql://localhost/db", ""] {
        let error = connect(url).await.err().expect("rejected");
        assert!(matches!(error, StoreError::UnsupportedUrl(_)), "{error:?}");
        assert!(check_database_url(url).is_err());
    }
}

#[tokio::test]
async fn postgres_urls_connect_and_migrate() {
    let db = cicada_store::testing::TestDatabase::postgres()
        .await
        .unwrap();
    let url = db.url().replacen("postgres://", "postgresql://", 1);
    let store = connect(&url).await.unwrap();
    store.create_run(&run("r1")).await.unwrap();
    // A second connect finds the migrations applied.
    let again = connect(db.url()).await.unwrap();
    assert!(again.get_run("r1").await.unwrap().is_some());
}

#[test]
fn known_urls_pass_the_check() {
    for url in [
        "postgres://h/db",
        "postgresql://h/db",
        "sqlite:x.db",
        "sqlite::memory:",
        "./cicada.db",
    ] {
        check_database_url(url).unwrap();
    }
}

#[tokio::test]
async fn concurrent_first_connects_to_one_sqlite_file_both_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shared.db").display());
    let (a, b) = tokio::join!(connect(&url), connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create_run(&run("r1")).await.unwrap();
    assert!(b.get_run("r1").await.unwrap().is_some());
}
