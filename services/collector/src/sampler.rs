//! Target resource sampling: while a run is live, the collector evaluates
//! the run's PromQL expression (`target_cpu.query` in its `config_json`)
//! against a Prometheus-compatible HTTP API once a second (instant query,
//! `GET /api/v1/query`) and stores the value with the run.
//!
//! The collector samples rather than the CLI or the controller because it
//! owns the run's lifetime and its store: samples survive the CLI going away
//! and land in the same database as the deltas. A failed or empty query is
//! logged and that second is left without a sample; sampling never affects
//! ingestion.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cicada_proto::v1;
use cicada_store::{RunStatus, Store, TargetSample};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Every this many seconds the sampler checks the run is still running
/// (it may have been finished through another collector, or deleted).
const RUNNING_CHECK_EVERY: u64 = 10;
/// Time allowed for one query, within its second.
const QUERY_TIMEOUT: Duration = Duration::from_millis(900);
/// Largest query response read.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// What to sample, from the run's `config_json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetCpuConfig {
    /// Base URL of the HTTP API, `http://host:port[/prefix]`.
    pub prometheus_url: String,
    pub query: String,
}

impl TargetCpuConfig {
    /// The sampling configured in `config_json`, if any.
    pub(crate) fn from_config_json(config_json: &str) -> Option<Self> {
        let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
        let target = config.get("target_cpu")?;
        Some(Self {
            prometheus_url: target.get("prometheus_url")?.as_str()?.to_owned(),
            query: target.get("query")?.as_str()?.to_owned(),
        })
    }
}

/// Per-run totals of the samples, for `RunStats.target_cpu`.
pub(crate) fn totals(query: &str, samples: &[TargetSample], requests: u64) -> v1::TargetCpu {
    let cpu_seconds: f64 = samples.iter().map(|s| s.value).sum();
    v1::TargetCpu {
        query: query.to_owned(),
        samples: u32::try_from(samples.len()).unwrap_or(u32::MAX),
        cpu_seconds,
        requests_per_cpu_second: if cpu_seconds > 0.0 {
            requests as f64 / cpu_seconds
        } else {
            0.0
        },
    }
}

/// A running sampler; stopping it waits for a query in flight.
pub(crate) struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Samples `config` for `run_id` each second until stopped.
    pub(crate) fn start(store: Arc<dyn Store>, run_id: String, config: TargetCpuConfig) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut failures = 0u64;
            for tick in 0u64.. {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                if tick % RUNNING_CHECK_EVERY == RUNNING_CHECK_EVERY - 1
                    && !running(&*store, &run_id).await
                {
                    tracing::info!(run_id, "run no longer running: target cpu sampling stops");
                    break;
                }
                let second = unix_second();
                let sampled = tokio::time::timeout(QUERY_TIMEOUT, query(&config, second)).await;
                let result = match sampled {
                    Ok(Ok(Some(value))) => store
                        .record_target_sample(&run_id, &TargetSample { second, value })
                        .await
                        .map_err(|error| error.to_string()),
                    Ok(Ok(None)) => Ok(()),
                    Ok(Err(error)) => Err(error),
                    Err(_) => Err("query timed out".to_owned()),
                };
                if let Err(error) = result {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(run_id, failures, %error, "target cpu sample failed");
                    }
                }
            }
        });
        Self { stop, task }
    }

    /// Stops sampling; returns once the last sample is stored.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "target cpu sampler failed");
        }
    }
}

/// False once the run is known to have ended or to be gone.
async fn running(store: &dyn Store, run_id: &str) -> bool {
    match store.get_run(run_id).await {
        Ok(Some(record)) => record.status == RunStatus::Running,
        Ok(None) => false,
        // Unknown: keep sampling.
        Err(_) => true,
    }
}

fn unix_second() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Evaluates the query at `second`: the sum of the returned series' values,
/// `None` when it returned no series (e.g. a rate before two scrapes).
async fn query(config: &TargetCpuConfig, second: i64) -> Result<Option<f64>, String> {
    let base = url::Url::parse(&config.prometheus_url)
        .map_err(|error| format!("bad prometheus url: {error}"))?;
    let host = base.host_str().ok_or("prometheus url has no host")?;
    let port = base.port_or_known_default().unwrap_or(80);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", &config.query)
        .append_pair("time", &second.to_string())
        .finish();
    let path = format!("{}/api/v1/query?{query}", base.path().trim_end_matches('/'));
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|error| format!("connect {host}:{port}: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("http handshake: {error}"))?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("query: {error}"))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|error| format!("read response: {error}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "prometheus answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    parse_response(&body)
}

/// The value of an instant query response: a scalar, or the sum of a
/// vector's samples.
fn parse_response(body: &[u8]) -> Result<Option<f64>, String> {
    let response: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("response is not JSON: {error}"))?;
    if response["status"] != "success" {
        return Err(format!("query failed: {}", response["error"]));
    }
    let value = |pair: &serde_json::Value| -> Result<f64, String> {
        pair[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("bad sample {pair}"))
    };
    let data = &response["data"];
    match data["resultType"].as_str() {
        Some("scalar") => value(&data["result"]).map(Some),
        Some("vector") => {
            let series = data["result"].as_array().ok_or("vector without result")?;
            if series.is_empty() {
                return Ok(None);
            }
            let mut sum = 0.0;
            for s in series {
                sum += value(&s["value"])?;
            }
            Ok(Some(sum))
        }
        other => Err(format!(
            "the query must give a scalar or an instant vector, not {other:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_to_summed_values() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"a"},"value":[1700000000,"0.25"]},
            {"metric":{"job":"b"},"value":[1700000000,"1.5"]}]}}"#;
        assert_eq!(parse_response(vector).unwrap(), Some(1.75));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_response(empty).unwrap(), None);
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(parse_response(scalar).unwrap(), Some(2.0));
        let error = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(parse_response(error).unwrap_err().contains("parse error"));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_response(matrix).is_err());
    }

    #[test]
    fn config_and_totals() {
        let config = TargetCpuConfig::from_config_json(
            r#"{"users":1,"target_cpu":{"prometheus_url":"http://127.0.0.1:9090","query":"up"}}"#,
        )
        .unwrap();
        assert_eq!(config.query, "up");
        assert!(TargetCpuConfig::from_config_json(r#"{"users":1}"#).is_none());
        let samples = [
            TargetSample {
                second: 1,
                value: 0.5,
            },
            TargetSample {
                second: 2,
                value: 1.5,
            },
        ];
        let cpu = totals("up", &samples, 1000);
        assert_eq!(cpu.samples, 2);
        assert_eq!(cpu.cpu_seconds, 2.0);
        assert_eq!(cpu.requests_per_cpu_second, 500.0);
        assert_eq!(totals("up", &[], 10).requests_per_cpu_second, 0.0);
    }
}
