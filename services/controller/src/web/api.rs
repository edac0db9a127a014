//! The run control endpoints: status, scenarios, start, stop, scale, workers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cicada_proto::v1::{ScaleRunRequest, StartRunRequest, WorkerInfo};
use cicada_scenario::Scenario;
use serde::{Deserialize, Serialize};

use super::Web;
use super::live::state_name;
use super::reply::{self, Reply, WebError};
use crate::{service, start};

/// Scenario files larger than this are not offered (nor read).
const MAX_SCENARIO_BYTES: u64 = 1 << 20;
/// Most scenario files listed from `--scenarios DIR`.
const MAX_SCENARIOS: usize = 500;
/// A worker above this share of its cores is shown as saturated.
const SATURATED_CPU: f64 = 0.9;

#[derive(Serialize)]
struct RunBrief {
    run_id: String,
    scenario_name: String,
    state: &'static str,
    started_at_ms: i64,
}

/// `GET /api/status`.
pub(crate) fn status(web: &Web) -> Result<Reply, WebError> {
    let live_runs: Vec<RunBrief> = web
        .shared
        .runs
        .active()
        .into_iter()
        .map(|run| {
            let status = run.status.borrow();
            RunBrief {
                run_id: run.id.clone(),
                scenario_name: status.plan.scenario_name.clone(),
                state: state_name(status.state),
                started_at_ms: status.plan.started_at_ms,
            }
        })
        .collect();
    let scenarios = match &web.config.scenarios_dir {
        Some(dir) => scenario_files(dir).map_or(0, |files| files.len()),
        None => 0,
    };
    Ok(reply::json(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "workers": web.shared.registry.len(),
        "idle_workers": web.shared.registry.idle_count(),
        "live_runs": live_runs,
        "scenarios": scenarios,
        "auth": web.config.auth.is_some() || web.shared.config.token.is_some(),
    })))
}

#[derive(Serialize)]
struct ScenarioFile {
    name: String,
    path: String,
    yaml: String,
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted by file name.
fn scenario_files(dir: &Path) -> Result<Vec<String>, WebError> {
    let entries = std::fs::read_dir(dir).map_err(|error| {
        WebError::Internal(format!(
            "failed to read the scenarios directory {}: {error}",
            dir.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let wanted =
                !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"));
            // Names first, then one stat each. Follows symlinks: a
            // Kubernetes ConfigMap volume's files are links into its
            // hidden `..data` directory.
            (wanted && std::fs::metadata(entry.path()).is_ok_and(|kind| kind.is_file()))
                .then_some(name)
        })
        .collect();
    names.sort();
    names.truncate(MAX_SCENARIOS);
    Ok(names)
}

/// Reads one listed scenario file by its file name (never a path outside
/// the directory).
fn read_scenario(dir: &Path, name: &str) -> Result<String, WebError> {
    if !scenario_files(dir)?.iter().any(|listed| listed == name) {
        return Err(WebError::BadRequest(format!(
            "no scenario file {name:?} in the scenarios directory; GET /api/scenarios lists them"
        )));
    }
    read_listed(dir, name)
}

/// The data files and `tls:` files of a scenario read from the scenarios
/// directory: each relative to the scenario file, inside the directory
/// (no absolute path, no `..`), within its size limit. A scenario that
/// does not parse reads none (the start then reports its error).
type ScenarioFiles = (
    Vec<cicada_proto::v1::DataFile>,
    Vec<cicada_proto::v1::DataFile>,
);

fn read_scenario_files(
    dir: &Path,
    scenario_path: &str,
    yaml: &str,
) -> Result<ScenarioFiles, WebError> {
    use cicada_scenario::data::MAX_DATA_BYTES;
    let Ok(scenario) = cicada_scenario::Scenario::parse(scenario_path, yaml) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let folder = Path::new(scenario_path).parent().unwrap_or(Path::new(""));
    let mut data = Vec::with_capacity(scenario.data().len());
    for set in scenario.data() {
        let what = format!("data set {:?}", set.name);
        data.push(read_inside(
            dir,
            folder,
            &set.file,
            &what,
            &set.name,
            MAX_DATA_BYTES,
        )?);
    }
    let mut tls = Vec::new();
    for (key, file) in scenario.tls().files() {
        let what = format!("tls.{key}");
        tls.push(read_inside(
            dir,
            folder,
            file,
            &what,
            key,
            cicada_scenario::MAX_TLS_FILE_BYTES,
        )?);
    }
    Ok((data, tls))
}

/// Reads `file` (relative to `folder` in `dir`, never outside it), at most
/// `limit` bytes and one more (the controller then refuses it by size).
fn read_inside(
    dir: &Path,
    folder: &Path,
    file: &str,
    what: &str,
    name: &str,
    limit: usize,
) -> Result<cicada_proto::v1::DataFile, WebError> {
    use std::io::Read as _;
    use std::path::Component;
    let relative = folder.join(file);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(WebError::BadRequest(format!(
            "{what}: {file:?} must be a path inside the scenarios directory"
        )));
    }
    let failed = |error: std::io::Error| {
        WebError::BadRequest(format!(
            "{what}: failed to read {}: {error}",
            relative.display()
        ))
    };
    let mut content = Vec::new();
    std::fs::File::open(dir.join(&relative))
        .map_err(failed)?
        .take(limit as u64 + 1)
        .read_to_end(&mut content)
        .map_err(failed)?;
    Ok(cicada_proto::v1::DataFile {
        name: name.to_owned(),
        path: relative.display().to_string(),
        content: content.into(),
    })
}

/// Reads a file [`scenario_files`] listed, at most `MAX_SCENARIO_BYTES`
/// (bounded while reading: the file may grow after a stat).
fn read_listed(dir: &Path, name: &str) -> Result<String, WebError> {
    use std::io::Read as _;
    let path = dir.join(name);
    let failed = |error: std::io::Error| {
        WebError::Internal(format!("failed to read {}: {error}", path.display()))
    };
    let mut text = String::new();
    std::fs::File::open(&path)
        .map_err(failed)?
        .take(MAX_SCENARIO_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    if text.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(WebError::BadRequest(format!(
            "scenario file {name:?} is larger than {MAX_SCENARIO_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// `GET /api/scenarios`.
pub(crate) async fn scenarios(web: &Arc<Web>) -> Result<Reply, WebError> {
    let Some(dir) = web.config.scenarios_dir.clone() else {
        return Ok(reply::json(&Vec::<ScenarioFile>::new()));
    };
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<ScenarioFile>, WebError> {
        let mut files = Vec::new();
        for path in scenario_files(&dir)? {
            let Ok(yaml) = read_listed(&dir, &path) else {
                continue;
            };
            let name = Scenario::parse(&path, &yaml)
                .map(|scenario| scenario.name().to_owned())
                .unwrap_or_else(|_| path.clone());
            files.push(ScenarioFile { name, path, yaml });
        }
        Ok(files)
    })
    .await
    .map_err(|error| WebError::Internal(format!("failed to list the scenarios: {error}")))??;
    Ok(reply::json(&files))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateForm {
    yaml: String,
    #[serde(default)]
    path: String,
}

/// `POST /api/scenarios/validate`.
pub(crate) fn validate(form: ValidateForm) -> Result<Reply, WebError> {
    let source = if form.path.is_empty() {
        "scenario"
    } else {
        form.path.as_str()
    };
    let scenario = Scenario::parse(source, &form.yaml).map_err(WebError::Scenario)?;
    Ok(reply::json(&serde_json::json!({
        "name": scenario.name(),
        "host": scenario.host(),
        // What the scenario sends; each request's connection rows follow.
        "endpoints": scenario
            .endpoints()
            .iter()
            .filter(|e| !cicada_store::is_connection_method(&e.method))
            .map(|e| format!("{} {}", e.method, e.name))
            .collect::<Vec<_>>(),
        "users": scenario
            .user_classes()
            .iter()
            .map(|c| serde_json::json!({ "name": c.name, "weight": c.weight }))
            .collect::<Vec<_>>(),
        "rate": scenario.rate(),
        "thresholds": scenario.thresholds().len(),
    })))
}

/// The start form (docs/WEB.md, StartForm).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartForm {
    /// Empty: read `scenario_path` from the scenarios directory.
    #[serde(default)]
    scenario_yaml: String,
    #[serde(default)]
    scenario_path: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    users: u32,
    #[serde(default)]
    spawn_rate: f64,
    #[serde(default)]
    rate: f64,
    #[serde(default)]
    max_in_flight: u32,
    /// A duration such as `90s` or `5m`; empty: until stopped.
    #[serde(default)]
    run_time: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    thresholds: Vec<String>,
}

impl StartForm {
    fn into_request(mut self, web: &Web) -> Result<StartRunRequest, WebError> {
        let (mut data, mut tls_files) = (Vec::new(), Vec::new());
        if self.scenario_yaml.trim().is_empty() {
            match (&web.config.scenarios_dir, self.scenario_path.is_empty()) {
                (_, true) => {
                    return Err(WebError::BadRequest(
                        "give scenario_yaml, or scenario_path naming a file of GET /api/scenarios"
                            .into(),
                    ));
                }
                (None, false) => {
                    return Err(WebError::BadRequest(
                        "scenario_yaml is empty and the controller has no --scenarios directory to read scenario_path from".into(),
                    ));
                }
                (Some(dir), false) => {
                    self.scenario_yaml = read_scenario(dir, &self.scenario_path)?;
                    (data, tls_files) =
                        read_scenario_files(dir, &self.scenario_path, &self.scenario_yaml)?;
                }
            }
        }
        let run_time = self.run_time.trim();
        let run_time_ms = if run_time.is_empty() {
            0
        } else {
            humantime::parse_duration(run_time)
                .map_err(|error| {
                    WebError::BadRequest(format!(
                        "invalid run_time {run_time:?}: {error} (e.g. 90s, 5m, 1h30m; empty runs until stopped)"
                    ))
                })?
                .as_millis() as u64
        };
        if self.labels.keys().any(|key| key.trim().is_empty()) {
            return Err(WebError::BadRequest(
                "labels must have non-empty keys".into(),
            ));
        }
        Ok(StartRunRequest {
            scenario_yaml: self.scenario_yaml,
            scenario_path: self.scenario_path,
            data,
            tls_files,
            host: self.host.trim().to_owned(),
            users: self.users,
            spawn_rate: self.spawn_rate,
            run_time_ms,
            labels: self.labels,
            rate: self.rate,
            max_in_flight: self.max_in_flight,
            thresholds: self
                .thresholds
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect(),
            ..StartRunRequest::default()
        })
    }
}

/// `POST /api/runs`: the same start as the gRPC `StartRun`.
pub(crate) async fn start(web: &Arc<Web>, form: StartForm) -> Result<Reply, WebError> {
    let request = form.into_request(web)?;
    let response = start::start_run(&web.shared, request).await?;
    Ok(reply::json(&serde_json::json!({
        "run_id": response.run_id,
        "workers": response.workers,
    })))
}

/// `POST /api/runs/ID/stop`.
pub(crate) fn stop(web: &Web, run_id: &str) -> Result<Reply, WebError> {
    service::stop_run(&web.shared, run_id)?;
    Ok(reply::json(&serde_json::json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScaleForm {
    users: Option<u32>,
    rate: Option<f64>,
    #[serde(default)]
    spawn_rate: f64,
}

/// `POST /api/runs/ID/scale`.
pub(crate) fn scale(web: &Web, run_id: &str, form: ScaleForm) -> Result<Reply, WebError> {
    service::scale_run(
        &web.shared,
        ScaleRunRequest {
            run_id: run_id.to_owned(),
            users: form.users,
            rate: form.rate,
            spawn_rate: form.spawn_rate,
        },
    )?;
    Ok(reply::json(&serde_json::json!({})))
}

/// One worker as the UI shows it.
#[derive(Serialize, Clone, Debug)]
pub struct Worker {
    worker_id: String,
    hostname: String,
    cores: u32,
    state: &'static str,
    run_id: String,
    users: u32,
    in_flight: u64,
    cpu_percent: f64,
    rss_bytes: u64,
    rps: f64,
    /// Measured requests per CPU-second (0 until it has been busy).
    requests_per_cpu_second: f64,
    last_seen_ms: u64,
}

impl From<WorkerInfo> for Worker {
    fn from(info: WorkerInfo) -> Self {
        let saturated = info.cpu_percent > SATURATED_CPU * 100.0 * f64::from(info.cores.max(1));
        let state = match (info.run_id.is_empty(), saturated) {
            (true, _) => "idle",
            (false, true) => "saturated",
            (false, false) => "running",
        };
        Worker {
            worker_id: info.worker_id,
            hostname: info.hostname,
            cores: info.cores,
            state,
            run_id: info.run_id,
            users: info.active_users,
            in_flight: info.in_flight,
            cpu_percent: info.cpu_percent,
            rss_bytes: info.rss_bytes,
            rps: info.rps,
            requests_per_cpu_second: info.requests_per_cpu_second,
            last_seen_ms: info.last_seen_ms,
        }
    }
}

/// `GET /api/workers`.
pub(crate) fn workers(web: &Web) -> Vec<Worker> {
    web.shared
        .registry
        .list()
        .into_iter()
        .map(Worker::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_yaml_files_and_links_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("a.yaml"), "name: a").unwrap();
        std::os::unix::fs::symlink(data.join("a.yaml"), dir.path().join("a.yaml")).unwrap();
        std::fs::write(dir.path().join("b.yml"), "name: b").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "x").unwrap();
        std::fs::create_dir(dir.path().join("dir.yaml")).unwrap();
        assert_eq!(scenario_files(dir.path()).unwrap(), ["a.yaml", "b.yml"]);
        assert_eq!(read_scenario(dir.path(), "a.yaml").unwrap(), "name: a");
        assert!(read_scenario(dir.path(), "../a.yaml").is_err());
        assert!(read_scenario(dir.path(), "notes.txt").is_err());
    }

    #[test]
    fn saturated_above_ninety_percent_of_the_cores() {
        let info = |cpu_percent, run: &str| WorkerInfo {
            cores: 2,
            cpu_percent,
            run_id: run.into(),
            ..Default::default()
        };
        assert_eq!(Worker::from(info(185.0, "r")).state, "saturated");
        assert_eq!(Worker::from(info(175.0, "r")).state, "running");
        assert_eq!(Worker::from(info(195.0, "")).state, "idle");
    }
}
