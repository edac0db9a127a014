//! A cicada cluster of separate processes on loopback: the sample target,
//! the collector, the controller and N workers, each its own process
//! (killed on drop), and the ways the tests drive and fault it.

use std::time::Duration;

use super::*;

/// The services of a cluster, each its own process; killed on drop.
pub struct Cluster {
    pub target_url: String,
    /// `host:port` the collector listens on (restarted on the same one).
    pub collector_addr: String,
    /// The collector URL the controller (and through it the workers) uses.
    pub collector_url: String,
    pub controller_url: String,
    pub database_url: String,
    pub collector: Process,
    pub controller: Process,
    pub workers: Vec<Process>,
    _target: Process,
}

pub fn spawn_controller(controller_url: &str, collector_url: &str) -> Process {
    spawn(
        "cicada-controller",
        &[
            "--listen",
            controller_url.trim_start_matches("http://"),
            "--collector",
            collector_url,
            // Parallel tests would all want the default web port.
            "--web-listen",
            "off",
        ],
    )
}

/// A collector on `addr` storing into `database_url`, with extra environment
/// (e.g. `CICADA_FAULT`).
pub fn spawn_collector(addr: &str, database_url: &str, env: &[(&str, &str)]) -> Process {
    spawn_env(
        "cicada-collector",
        &[
            "--listen",
            addr,
            "--http-listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ],
        env,
    )
}

pub fn spawn_worker(controller_url: &str, worker_id: &str) -> Process {
    spawn_worker_env(controller_url, worker_id, &[])
}

/// [`spawn_worker`] with extra environment (e.g. `CICADA_DELTA_INTERVAL`).
pub fn spawn_worker_env(controller_url: &str, worker_id: &str, env: &[(&str, &str)]) -> Process {
    spawn_env(
        "cicada-worker",
        &["--controller", controller_url, "--worker-id", worker_id],
        env,
    )
}

/// Waits (bounded) until something accepts TCP connections at `url`.
pub async fn wait_for_listener(url: &str) {
    let addr = url.trim_start_matches("http://").to_owned();
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listened on {addr}");
}

pub async fn wait_for_workers(controller: &str, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, _) = run_cicada(
            &["workers", "--controller", controller],
            Duration::from_secs(30),
        )
        .await;
        let connected = stdout.lines().filter(|l| l.starts_with("worker-")).count();
        if code == 0 && connected >= expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers did not register: {stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Users each worker reports running, from `cicada workers`.
pub async fn worker_users(controller: &str) -> Vec<(String, u32)> {
    let (code, stdout, stderr) = run_cicada(
        &["workers", "--controller", controller],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .filter(|line| line.starts_with("worker-"))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[0].to_owned(), fields[2].parse().unwrap())
        })
        .collect()
}

/// Polls `cicada workers` until `check` holds for the users per worker.
pub async fn wait_for_users(
    controller: &str,
    what: &str,
    check: impl Fn(&[(String, u32)]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let users = worker_users(controller).await;
        if check(&users) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: users per worker {users:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn total(users: &[(String, u32)]) -> u32 {
    users.iter().map(|(_, n)| n).sum()
}

/// Waits (bounded) until the run is stored as ended; returns it.
pub async fn wait_ended(database_url: &str, run_id: &str) -> cicada_store::RunRecord {
    let store = cicada_store::connect(database_url).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let run = store.get_run(run_id).await.unwrap().expect("run stored");
        if run.ended_at_ms.is_some() {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not end: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `cicada start` running in the background with `--summary-json`.
pub struct BackgroundRun {
    pub summary_path: PathBuf,
    _dir: tempfile::TempDir,
    handle: tokio::task::JoinHandle<(i32, String, String)>,
}

impl BackgroundRun {
    /// Waits for `cicada start` to end: (exit code, stdout, stderr, summary).
    pub async fn finish(self) -> (i32, String, String, serde_json::Value) {
        let (code, stdout, stderr) = self.handle.await.unwrap();
        let summary = std::fs::read_to_string(&self.summary_path)
            .map(|text| serde_json::from_str(&text).expect("summary JSON"))
            .unwrap_or(serde_json::Value::Null);
        (code, stdout, stderr, summary)
    }
}

impl Cluster {
    /// The target, a collector on `database_url`, a controller whose
    /// `--collector` is `collector_url` (the collector's own address when
    /// `None`) and `workers` workers named `worker-0..`.
    /// `route`: the collector's address and the URL the controller is given
    /// for it (a proxy in between), instead of a fresh port used directly.
    pub async fn start_via(
        database_url: &str,
        workers: usize,
        route: Option<(String, String)>,
    ) -> Self {
        let target_url = format!("http://127.0.0.1:{}", free_port());
        let target = spawn(
            "cicada-sample-target",
            &["--listen", target_url.trim_start_matches("http://")],
        );
        let (collector_addr, collector_url) = route.unwrap_or_else(|| {
            let addr = format!("127.0.0.1:{}", free_port());
            let url = format!("http://{addr}");
            (addr, url)
        });
        let collector = spawn_collector(&collector_addr, database_url, &[]);
        let controller_url = format!("http://127.0.0.1:{}", free_port());
        let controller = spawn_controller(&controller_url, &collector_url);
        let workers: Vec<Process> = (0..workers)
            .map(|i| spawn_worker(&controller_url, &format!("worker-{i}")))
            .collect();
        wait_for_listener(&target_url).await;
        wait_for_workers(&controller_url, workers.len()).await;
        Cluster {
            target_url,
            collector_addr,
            collector_url,
            controller_url,
            database_url: database_url.to_owned(),
            collector,
            controller,
            workers,
            _target: target,
        }
    }

    pub async fn start(database_url: &str, workers: usize) -> Self {
        Self::start_via(database_url, workers, None).await
    }

    /// Replaces the collector (after a crash or a stop) by a new process on
    /// the same address, with extra environment.
    pub async fn restart_collector(&mut self, env: &[(&str, &str)]) {
        self.collector = spawn_collector(&self.collector_addr, &self.database_url, env);
        wait_for_listener(&self.collector_addr).await;
    }

    /// `cicada ARGS --controller URL`; fails the test unless it exits 0.
    pub async fn cicada(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--controller", &self.controller_url]);
        let (code, stdout, stderr) = run_cicada(&all, Duration::from_secs(30)).await;
        assert_eq!(code, 0, "cicada {args:?}: {stderr}");
        stdout
    }

    fn start_args(&self, users: &str, extra: &[&str]) -> Vec<String> {
        let scenario = workspace_file("examples/weighted-reads.yaml");
        let mut args: Vec<String> = [
            "start",
            scenario.to_str().unwrap(),
            "--controller",
            &self.controller_url,
            "--host",
            &self.target_url,
            "-u",
            users,
            "-r",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts weighted-reads with `users` users in the background; returns
    /// the run id.
    pub async fn start_detached(&self, users: &str, extra: &[&str]) -> String {
        let mut args = self.start_args(users, extra);
        args.push("--detach".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = run_cicada(&args, Duration::from_secs(30)).await;
        assert_eq!(code, 0, "cicada start --detach: {stderr}");
        let run_id = stdout.trim().to_owned();
        assert_eq!(run_id.len(), 36, "a run id on stdout: {stdout:?}");
        run_id
    }

    /// `cicada start` of weighted-reads, followed to its end in the
    /// background (`extra` holds `-t` and the like).
    pub fn start_following(&self, users: &str, extra: &[&str]) -> BackgroundRun {
        let dir = tempfile::tempdir().unwrap();
        let summary_path = dir.path().join("summary.json");
        let mut args = self.start_args(users, extra);
        args.extend([
            "--summary-json".to_owned(),
            summary_path.display().to_string(),
        ]);
        let handle = tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cicada(&args, Duration::from_secs(240)).await
        });
        BackgroundRun {
            summary_path,
            _dir: dir,
            handle,
        }
    }

    /// The run this controller is running now, from `cicada runs`-free
    /// polling of the store: the newest run in the database.
    pub async fn wait_running_run(&self) -> String {
        let store = cicada_store::connect(&self.database_url).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let runs = store.list_runs(&Default::default()).await.unwrap();
            if let Some(run) = runs.first() {
                return run.id.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no run was created");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until the run has stored at least `requests`.
    pub async fn wait_stored(&self, run_id: &str, requests: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let stored = stored_run(&self.database_url, run_id).await;
            if stored.seconds_total.requests >= requests {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {requests} requests stored: {}",
                stored.seconds_total.requests
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the target served in total.
    pub async fn served(&self) -> u64 {
        target_stats(&self.target_url).await["total"]
            .as_u64()
            .unwrap()
    }

    /// Every request stored once: the stored totals equal what the target
    /// served, nothing cancelled, per-second rows equal the summaries.
    pub async fn assert_stored_equals_served(&self, run_id: &str) {
        let stored = stored_run(&self.database_url, run_id).await;
        let served = self.served().await;
        assert!(served > 0);
        assert_eq!(stored.summary_total.requests, served, "stored != served");
        assert_eq!(stored.summary_total.cancelled, 0);
        assert_eq!(stored.seconds_total, stored.summary_total);
    }
}
