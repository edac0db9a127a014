//! Fuzzing the history API's query parameters over real HTTP: a collector's
//! `serve_http` on loopback over a SQLite store with one run. Any path and
//! query gets an answer with a JSON body (or hyper's bare 400 for a request
//! line it cannot parse); bad input is a 4xx, never a 5xx, a panic or a
//! dropped connection.
//!
//! Bounded here (`CICADA_FUZZ_CASES` cases per property, default 128; one
//! loopback request each); docs/FUZZING.md has the long runs.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use cicada_store::{Endpoint, NewRun, Store};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn cases() -> u32 {
    std::env::var("CICADA_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(128)
}

/// The runtime the server runs on and its address, shared by every case.
struct Server {
    runtime: tokio::runtime::Runtime,
    addr: String,
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let addr = runtime.block_on(async {
            let store: Arc<dyn Store> =
                cicada_store::connect(path.to_str().unwrap()).await.unwrap();
            store
                .create_run(&NewRun {
                    checks: Default::default(),
                    id: "r1".to_owned(),
                    scenario_name: "shop".to_owned(),
                    scenario_yaml: "name: shop\n".to_owned(),
                    host: "http://h".to_owned(),
                    config_json: "{}".to_owned(),
                    labels: BTreeMap::from([("release".to_owned(), "1".to_owned())]),
                    started_at_ms: 1_700_000_000_000,
                    endpoints: vec![Endpoint {
                        index: 0,
                        method: "GET".to_owned(),
                        name: "/items".to_owned(),
                    }],
                    thresholds: Vec::new(),
                })
                .await
                .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::spawn(cicada_collector::serve_http(
                store,
                None,
                listener,
                std::future::pending(),
            ));
            addr
        });
        Server {
            runtime,
            addr,
            _dir: dir,
        }
    })
}

/// `method target` over one HTTP/1.1 connection: (status, body).
fn request(method: &str, target: &str) -> (u16, String) {
    let server = server();
    server.runtime.block_on(async {
        let mut stream = TcpStream::connect(&server.addr).await.unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut response),
        )
        .await
        .expect("an answer in time")
        .unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line for {target:?}: {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    })
}

const ROUTES: [&str; 7] = [
    "/api/runs",
    "/api/runs/r1",
    "/api/runs/r1/baseline",
    "/api/runs/nope",
    "/api/compare",
    "/api/trend",
    "/api/runs/r1/labels/k",
];

const KEYS: [&str; 16] = [
    "scenario",
    "label",
    "status",
    "after_ms",
    "before_ms",
    "limit",
    "from",
    "to",
    "a",
    "b",
    "tolerance",
    "metric",
    "endpoint",
    "last",
    "x",
    "",
];

/// Values around the edges of each parameter's type, and junk.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "0",
                "1",
                "-1",
                "18446744073709551615",
                "18446744073709551616",
                "9223372036854775807",
                "-9223372036854775808",
                "4294967296",
                "5%",
                "-5%",
                "NaN",
                "inf",
                "1e308",
                "p95",
                "p99.9",
                "rps",
                "failure_rate",
                "GET%20/items",
                "r1",
                "release=1",
                "=",
                "finished",
                "running",
                "%",
                "%zz",
                "%00",
                "%FF",
                "",
            ][..]
        )
        .prop_map(str::to_owned),
        "[ -~]{0,12}".prop_map(|text| text.replace(['&', '#', ' '], "")),
    ]
}

fn query() -> impl Strategy<Value = String> {
    proptest::collection::vec((prop::sample::select(KEYS.as_slice()), value()), 0..6).prop_map(
        |pairs| {
            pairs
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join("&")
        },
    )
}

fn check(method: &str, target: &str) -> Result<(), TestCaseError> {
    let (status, body) = request(method, target);
    prop_assert!(status < 500, "{method} {target} answered {status}: {body}");
    // hyper answers a request line it cannot parse (bytes a URI may not
    // hold) with a bare 400 before any handler runs.
    if !(status == 400 && body.is_empty()) {
        let json: Result<serde_json::Value, _> = serde_json::from_str(&body);
        prop_assert!(json.is_ok(), "{method} {target}: not JSON: {body:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn query_parameters(route in prop::sample::select(ROUTES.as_slice()), query in query()) {
        check("GET", &format!("{route}?{query}"))?;
    }

    /// Arbitrary printable bytes after `?` (percent-encoding left as it is).
    #[test]
    fn raw_query_text(route in prop::sample::select(ROUTES.as_slice()), raw in "[!-~]{0,40}") {
        let raw = raw.replace('#', "");
        check("GET", &format!("{route}?{raw}"))?;
    }

    #[test]
    fn methods_and_paths(method in prop::sample::select(&["GET", "PUT", "DELETE", "POST"][..]), path in "(/[a-z0-9%._-]{0,8}){0,5}") {
        let path = if path.is_empty() { "/".to_owned() } else { path };
        check(method, &path)?;
    }
}
