//! Test helpers (feature `testsuite`): scrape a `/metrics` endpoint over
//! real HTTP and parse the Prometheus text format.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `address` over HTTP/1.0 (the server closes after the
/// answer): (status code, content type, body). Bounded to 10 s.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        std::io::Result::Ok(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the metrics request ends within 10 s")
        .expect("the metrics request succeeds");
    let answer = String::from_utf8(answer).expect("a UTF-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// Parsed Prometheus text: every sample by its series (`name` or
/// `name{label="value",...}` as written), and every family's type.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: HashMap<String, f64>,
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// The sample of `series`; panics (showing what there is) when absent.
    pub fn value(&self, series: &str) -> f64 {
        match self.samples.get(series) {
            Some(value) => *value,
            None => {
                let mut names: Vec<&String> = self.samples.keys().collect();
                names.sort();
                panic!("no sample {series:?}; the scrape has {names:?}")
            }
        }
    }
}

/// Parses the Prometheus text format strictly enough for tests: each
/// sample line is `series value`, the value a float, and its family was
/// declared by a `# TYPE` line before it.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            scrape.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            value => value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = series.split('{').next().unwrap_or(series);
        let declared = scrape.types.keys().any(|family| {
            name == family
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family))
        });
        assert!(declared, "sample {name} before its # TYPE line");
        scrape.samples.insert(series.to_owned(), value);
    }
    scrape
}

/// Scrapes `http://address/metrics`: checks the status and content type and
/// parses the body.
pub async fn scrape(address: SocketAddr) -> Scrape {
    let (status, content_type, body) = get(address, crate::metrics::PATH).await;
    assert_eq!(status, 200, "GET /metrics answered {status}: {body}");
    assert_eq!(content_type, crate::metrics::CONTENT_TYPE);
    parse(&body)
}
