//! Target CPU sampling end to end: a real Prometheus server (Debian's
//! `prometheus`, installed by scripts/ensure-prometheus.sh) on loopback
//! scraping the sample target's `/process-metrics` every second, and a real
//! `cicada run --target-cpu-query ... --prometheus-url ...`: the collector
//! samples the query each second, stores the samples with the run, and the
//! summary's totals agree with what is stored.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use cicada_sample_target::TargetConfig;
use cicada_store::testing::TestDatabase;
use support::*;

const QUERY: &str = r#"sum(rate(process_cpu_seconds_total{job="target"}[5s]))"#;

/// Starts `prometheus` scraping `target_url` every second; waits until the
/// query has data.
async fn start_prometheus(dir: &std::path::Path, target_url: &str) -> (Process, String) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: target\n    metrics_path: /process-metrics\n    \
             static_configs:\n      - targets: ['{}']\n",
            target_url.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "failed to start prometheus ({error}): install it with scripts/ensure-prometheus.sh \
                 (Debian package `prometheus`); scripts/test.sh does this"
            )
        });
    let process = Process(child);
    let url = format!("http://{address}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let query = format!(
        "/api/v1/query?query={}",
        "sum(rate(process_cpu_seconds_total%7Bjob%3D%22target%22%7D%5B5s%5D))"
    );
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus at {url} did not get data within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(Ok(body)) =
            tokio::time::timeout(Duration::from_secs(2), try_get(&address, &query)).await
        else {
            continue;
        };
        if body.contains(r#""resultType":"vector","result":[{"#) {
            return (process, url);
        }
    }
}

/// `GET path` on `address`, the body when the answer is 200.
async fn try_get(address: &str, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(response)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_cpu_is_sampled_each_second_and_stored_with_the_run() {
    let db = TestDatabase::sqlite().unwrap();
    let target = start_target(TargetConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prometheus_url) = start_prometheus(dir.path(), &target.url).await;

    let LocalRun {
        code,
        stdout,
        stderr,
        summary,
    } = cicada_run_with(
        &workspace_file("examples/weighted-reads.yaml"),
        &target.url,
        db.url(),
        &[
            "--workers",
            "1",
            "-u",
            "4",
            "-r",
            "100",
            "-t",
            "5s",
            "--target-cpu-query",
            QUERY,
            "--prometheus-url",
            &prometheus_url,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "cicada run failed: {stderr}");
    assert!(
        stdout.contains("Target CPU:"),
        "no target CPU line: {stdout}"
    );
    let cpu = &summary["target_cpu"];
    assert_eq!(cpu["query"], QUERY);

    // Stored per second, one sample per sampled second, inside the run.
    let run_id = summary["run_id"].as_str().unwrap();
    let store = cicada_store::connect(db.url()).await.unwrap();
    let samples = store.target_samples(run_id).await.unwrap();
    let record = store.get_run(run_id).await.unwrap().unwrap();
    assert!(
        samples.len() >= 3,
        "a 5 s run sampled each second stored {} samples",
        samples.len()
    );
    assert!(samples.windows(2).all(|w| w[0].second < w[1].second));
    let (start, end) = (
        record.started_at_ms / 1000,
        record.ended_at_ms.unwrap() / 1000,
    );
    assert!(
        samples
            .iter()
            // Sampling runs from CreateRun to FinishRun, which comes after
            // the stop grace: a few seconds past the end at most.
            .all(|s| s.second >= start && s.second <= end + 5),
        "samples outside the run {start}..{end}: {samples:?}"
    );
    // Cores: the target served requests, on at most the machine's cores.
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(samples.iter().all(|s| s.value >= 0.0 && s.value <= cores));

    // The summary's totals are the stored samples' totals (to the last bit
    // in the collector; serde_json's default float parsing may be one ulp off).
    let same = |json: &serde_json::Value, value: f64| {
        let parsed = json.as_f64().unwrap();
        assert!(
            (parsed - value).abs() <= value.abs() * 1e-12,
            "{parsed} != {value}"
        );
    };
    let stored_cpu_seconds: f64 = samples.iter().map(|s| s.value).sum();
    assert_eq!(cpu["samples"].as_u64().unwrap(), samples.len() as u64);
    same(&cpu["cpu_seconds"], stored_cpu_seconds);
    assert!(
        stored_cpu_seconds > 0.0,
        "the target burnt no CPU: {samples:?}"
    );
    let requests = summary["total"]["requests"].as_u64().unwrap();
    assert!(requests > 0);
    same(
        &cpu["requests_per_cpu_second"],
        requests as f64 / stored_cpu_seconds,
    );
}
