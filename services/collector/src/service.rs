//! The `cicada.v1.Collector` gRPC service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cicada_proto::v1;
use cicada_proto::v1::collector_server::Collector;
use cicada_store::{
    ApplyOutcome, LostWorkerRecord, RunFilter, RunFinish, RunRecord, RunStatus, Store, StoreError,
};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::convert;
use crate::error::CollectorError;
use crate::health::WriteFailures;
use crate::ingest::Ingest;
use crate::live::LiveAggregate;
use crate::loss;
use crate::metrics::Metrics;
use crate::otlp::Feed;
use crate::runs::{ReadGuard, RunState, Runs};
use crate::sampler::{self, Sampler, TargetCpuConfig};
use crate::stats::{self, StatsInput};
use crate::threshold;

/// How often `FinishRun` re-reads the watermarks while waiting for deltas.
const FINISH_POLL: Duration = Duration::from_millis(20);
/// Runs older than this are not sampled again after a restart (a run left
/// running by a lost controller would otherwise be sampled forever).
const RESUME_SAMPLING_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Upper bound on `FinishRun.wait_ms`, whatever the caller asks for.
const MAX_FINISH_WAIT: Duration = Duration::from_secs(600);

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The collector service over a store.
#[derive(Clone)]
pub struct CollectorService {
    store: Arc<dyn Store>,
    runs: Arc<Runs>,
    /// OTLP export of applied deltas, when configured.
    otlp: Option<Arc<Feed>>,
    /// Target resource samplers of the live runs that asked for one.
    samplers: Arc<Mutex<HashMap<String, Sampler>>>,
    /// Told of transient write failures (health turns NOT_SERVING).
    write_failures: WriteFailures,
    /// The group-commit writer, started with the first push.
    ingest: Arc<tokio::sync::OnceCell<Ingest>>,
    /// The collector's own metrics (`GET /metrics`).
    metrics: Metrics,
}

impl CollectorService {
    /// A service storing into `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            runs: Arc::new(Runs::new(store.clone())),
            store,
            otlp: None,
            samplers: Arc::default(),
            write_failures: WriteFailures::default(),
            ingest: Arc::default(),
            metrics: Metrics::default(),
        }
    }

    /// Counts into `metrics` (shared with the HTTP port's `/metrics`).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reports transient write failures to `failures` (the health task).
    pub(crate) fn with_write_failures(mut self, failures: WriteFailures) -> Self {
        self.write_failures = failures;
        self
    }

    /// Also exports applied deltas through `feed`.
    pub(crate) fn with_otlp(mut self, feed: Arc<Feed>) -> Self {
        self.otlp = Some(feed);
        self
    }

    async fn create(&self, request: v1::CreateRunRequest) -> Result<(), CollectorError> {
        let run = convert::new_run(request, now_ms())?;
        let thresholds = threshold::resolve_all(&run.thresholds, &run.endpoints)
            .map_err(CollectorError::InvalidArgument)?;
        self.store.create_run(&run).await?;
        tracing::info!(run_id = %run.id, scenario = %run.scenario_name, endpoints = run.endpoints.len(), "run created");
        if let Some(target) = TargetCpuConfig::from_config_json(&run.config_json) {
            self.start_sampler(&run.id, target).await;
        }
        let record = RunRecord {
            id: run.id,
            scenario_name: run.scenario_name,
            scenario_yaml: run.scenario_yaml,
            host: run.host,
            config_json: run.config_json,
            labels: run.labels,
            status: RunStatus::Running,
            started_at_ms: run.started_at_ms,
            ended_at_ms: None,
            error: None,
        };
        self.runs
            .insert(RunState::created(record, run.endpoints, thresholds))
            .await;
        Ok(())
    }

    async fn start_sampler(&self, run_id: &str, target: TargetCpuConfig) {
        tracing::info!(run_id, query = %target.query, "sampling target cpu");
        let sampler = Sampler::start(self.store.clone(), run_id.to_owned(), target);
        let previous = self
            .samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.to_owned(), sampler);
        if let Some(previous) = previous {
            previous.stop().await;
        }
    }

    /// Resumes target CPU sampling of the runs still running (started in
    /// the last [`RESUME_SAMPLING_WITHIN`]) after a collector (re)start.
    /// Several collectors sampling one run store the same seconds: the last
    /// value of a second wins.
    pub(crate) async fn resume_sampling(&self) -> Result<(), CollectorError> {
        let filter = RunFilter {
            limit: 1000,
            status: Some(RunStatus::Running),
            started_after_ms: Some(now_ms() - RESUME_SAMPLING_WITHIN.as_millis() as i64),
            ..RunFilter::default()
        };
        for record in self.store.list_runs(&filter).await? {
            if let Some(target) = TargetCpuConfig::from_config_json(&record.config_json) {
                self.start_sampler(&record.id, target).await;
            }
        }
        Ok(())
    }

    /// Applies a push's deltas through the group-commit writer, then feeds
    /// the applied ones to the live view and OTLP. The first refused delta's
    /// error is the answer (the worker re-sends the push; what was applied
    /// comes back as duplicates).
    async fn push(
        &self,
        deltas: &[v1::WorkerDelta],
    ) -> Result<v1::PushDeltasResponse, CollectorError> {
        self.metrics.received.inc_by(deltas.len() as u64);
        // A push's deltas are nearly always of one run: its state is read
        // once for the lot, not once per delta.
        let mut converted = Vec::with_capacity(deltas.len());
        let mut state: Option<ReadGuard> = None;
        for delta in deltas {
            let checked = match self.state_of(&mut state, &delta.run_id).await {
                Ok(run) => convert::delta(delta, run.endpoints.len()),
                Err(error) => Err(error),
            };
            match checked {
                Ok(delta) => converted.push(delta),
                Err(error) => {
                    // The whole push is refused.
                    self.metrics.refused.inc_by(deltas.len() as u64);
                    return Err(error);
                }
            }
        }
        // Not held while the writer commits: a run invalidated meanwhile
        // (write lock) must not wait for this push.
        drop(state);
        let ingest = self
            .ingest
            .get_or_init(|| async { Ingest::start(self.store.clone(), self.metrics.clone()) })
            .await;
        let (converted, outcomes) = ingest
            .apply(converted)
            .await
            .ok_or_else(|| CollectorError::Unavailable("the collector is stopping".into()))?;
        let mut response = v1::PushDeltasResponse::default();
        let mut first_error = None;
        let mut state: Option<ReadGuard> = None;
        for (delta, outcome) in converted.iter().zip(outcomes) {
            match outcome {
                Ok(ApplyOutcome::Applied) => {
                    response.applied += 1;
                    self.metrics.applied.inc();
                    // A run that vanished meanwhile has no live view to feed.
                    if let Ok(run) = self.state_of(&mut state, &delta.run_id).await {
                        self.applied(run, delta);
                    }
                }
                Ok(ApplyOutcome::Duplicate) => {
                    response.duplicates += 1;
                    self.metrics.duplicate.inc();
                }
                Err(error) => {
                    self.metrics.refused.inc();
                    if first_error.is_none() {
                        // `refused` may take the run's write lock.
                        state = None;
                        first_error = Some(self.refused(error).await);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(response),
        }
    }

    /// The state of `run_id`, reusing `held` when it is that run's.
    async fn state_of<'a>(
        &self,
        held: &'a mut Option<ReadGuard>,
        run_id: &str,
    ) -> Result<&'a RunState, CollectorError> {
        if held.as_ref().is_none_or(|state| state.record.id != run_id) {
            *held = None;
            *held = Some(self.runs.read(run_id).await?);
        }
        Ok(held.as_deref().expect("set above"))
    }

    /// An applied delta's measurements for the live view and OTLP (a loss
    /// marker carries none). A shared store's live figures are read from it
    /// (`merged`): no in-memory view to keep.
    fn applied(&self, state: &RunState, delta: &cicada_store::Delta) {
        let local = !self.store.shared();
        if !delta.evicted.is_empty() {
            if local {
                state.with_live(|live| live.add_evicted(delta.evicted.iter().sum()));
            }
        } else {
            if local {
                state.with_live(|live| live.apply(delta));
            }
            if let Some(feed) = &self.otlp {
                feed.applied(&state.record, &state.endpoints, delta);
            }
        }
    }

    /// The error a refused delta is answered with.
    async fn refused(&self, error: StoreError) -> CollectorError {
        match error {
            StoreError::RunFinished(run_id) => {
                // Finished through another collector: stop serving a stale
                // live view.
                let live = self
                    .runs
                    .read(&run_id)
                    .await
                    .is_ok_and(|state| state.live.is_some());
                if live {
                    self.runs.invalidate(&run_id).await;
                }
                StoreError::RunFinished(run_id).into()
            }
            error => {
                if error.is_transient() {
                    self.write_failures.failed();
                }
                tracing::debug!(%error, "delta refused");
                error.into()
            }
        }
    }

    /// Waits until every listed worker's watermark reaches its last seq or
    /// `wait` runs out; true when all are in.
    async fn wait_for_workers(
        &self,
        run_id: &str,
        workers: &[v1::WorkerFinal],
        wait: Duration,
    ) -> Result<bool, CollectorError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let marks = self.store.watermarks(run_id).await?;
            let missing: Vec<&str> = workers
                .iter()
                .filter(|w| {
                    let seq = marks
                        .iter()
                        .find(|m| m.worker_id == w.worker_id)
                        .map_or(0, |m| m.seq);
                    seq < w.last_seq
                })
                .map(|w| w.worker_id.as_str())
                .collect();
            if missing.is_empty() {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::warn!(run_id, ?missing, "finishing without every worker's deltas");
                return Ok(false);
            }
            tokio::time::sleep(FINISH_POLL.min(deadline - now)).await;
        }
    }

    async fn finish(
        &self,
        request: v1::FinishRunRequest,
    ) -> Result<v1::FinishRunResponse, CollectorError> {
        let run_id = request.run_id.as_str();
        // Unknown runs fail before any waiting.
        drop(self.runs.read(run_id).await?);
        let complete = self
            .wait_for_workers(
                run_id,
                &request.workers,
                Duration::from_millis(request.wait_ms).min(MAX_FINISH_WAIT),
            )
            .await?;
        let sampler = self
            .samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run_id);
        if let Some(sampler) = sampler {
            sampler.stop().await;
        }
        let ended_at_ms = if request.ended_at_ms > 0 {
            request.ended_at_ms
        } else {
            now_ms()
        };
        let mut lost_workers = self
            .lost_workers(run_id, &request.lost, &request.workers)
            .await?;
        if !complete {
            lost_workers.extend(
                self.unflushed_workers(run_id, &request.workers, ended_at_ms)
                    .await?,
            );
        }
        let finish = RunFinish {
            status: convert::finish_status(request.state),
            ended_at_ms,
            error: (!request.error.is_empty()).then_some(request.error),
            lost_workers,
        };
        {
            let mut state = self.runs.write(run_id).await?;
            let was_running = state.record.status == RunStatus::Running;
            state.record = self.store.finish_run(run_id, &finish).await?;
            state.live = None;
            if was_running {
                tracing::info!(run_id, status = %state.record.status, complete, "run finished");
            }
            if let Some(feed) = &self.otlp {
                feed.finished(run_id);
            }
        }
        let stats = self.stats(run_id).await?;
        // Final results from the stored summaries, stored with the run
        // (again on a repeated FinishRun: the same numbers).
        if !stats.thresholds.is_empty() {
            self.store
                .record_threshold_results(run_id, &threshold::outcomes(&stats.thresholds))
                .await?;
            let failed = stats.thresholds.iter().filter(|t| !t.passed).count();
            tracing::info!(
                run_id,
                thresholds = stats.thresholds.len(),
                failed,
                "thresholds checked"
            );
        }
        Ok(v1::FinishRunResponse {
            stats: Some(stats),
            incomplete: !complete,
        })
    }

    /// The bound of what each lost worker took with it, from its source's
    /// watermark (`loss`); logged loudly.
    async fn lost_workers(
        &self,
        run_id: &str,
        lost: &[v1::LostWorker],
        finals: &[v1::WorkerFinal],
    ) -> Result<Vec<LostWorkerRecord>, CollectorError> {
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        let started_at_ms = self.runs.read(run_id).await?.record.started_at_ms;
        let marks = self.store.watermarks(run_id).await?;
        Ok(lost
            .iter()
            .map(|worker| {
                let mark = loss::watermark(worker, &marks, finals);
                let record = loss::bound(worker, mark, started_at_ms);
                tracing::error!(
                    run_id,
                    worker_id = %record.worker_id,
                    at_s = record.at_s,
                    received = record.received,
                    unrecorded_max = record.unrecorded_max,
                    peak_rps = mark.map_or(0.0, |m| m.peak_rps),
                    heartbeat_rps = worker.rate_rps,
                    since_last_delta_ms = mark.map_or(0, |m| worker.worker_at_ms - m.cut_at_ms),
                    in_flight_max = worker.in_flight_max,
                    "worker lost without its final flush: up to unrecorded_max requests are missing from the run"
                );
                record
            })
            .collect())
    }

    /// Workers that flushed but whose last deltas never arrived: each one's
    /// exact shortfall, logged loudly.
    async fn unflushed_workers(
        &self,
        run_id: &str,
        finals: &[v1::WorkerFinal],
        ended_at_ms: i64,
    ) -> Result<Vec<LostWorkerRecord>, CollectorError> {
        if finals.is_empty() {
            return Ok(Vec::new());
        }
        let started_at_ms = self.runs.read(run_id).await?.record.started_at_ms;
        let ended_at_s = ((ended_at_ms - started_at_ms).max(0) as f64) / 1000.0;
        let marks = self.store.watermarks(run_id).await?;
        Ok(finals
            .iter()
            .filter_map(|last| {
                let mark = marks.iter().find(|m| m.worker_id == last.worker_id);
                let record = loss::unflushed(last, mark, ended_at_s)?;
                tracing::error!(
                    run_id,
                    worker_id = %record.delta_source,
                    unrecorded = record.unrecorded_max,
                    "the last deltas of a worker did not arrive before the run was finished"
                );
                Some(record)
            })
            .collect())
    }

    /// The statistics of an ended run from its stored summaries.
    async fn final_stats(&self, state: &RunState) -> Result<v1::RunStats, CollectorError> {
        let run_id = state.record.id.as_str();
        let mut totals = vec![Default::default(); state.endpoints.len()];
        let mut uncorrected = vec![None; state.endpoints.len()];
        for summary in self.store.summaries(run_id).await? {
            if let Some(slot) = totals.get_mut(summary.endpoint as usize) {
                *slot = (summary.counts, summary.histogram);
                uncorrected[summary.endpoint as usize] = summary.uncorrected;
            }
        }
        let dropped = self.store.dropped(run_id).await?;
        let failures = self.store.failures(run_id).await?;
        let lost_workers = self.store.lost_workers(run_id).await?;
        let evicted_requests = self
            .store
            .watermarks(run_id)
            .await?
            .iter()
            .map(|mark| mark.evicted_requests)
            .sum();
        let target_cpu = match TargetCpuConfig::from_config_json(&state.record.config_json) {
            Some(target) => {
                let samples = self.store.target_samples(run_id).await?;
                // Requests only: not the group and connection rows.
                let requests = state
                    .endpoints
                    .iter()
                    .filter(|e| e.is_request())
                    .filter_map(|e| totals.get(e.index as usize))
                    .map(|(counts, _)| counts.requests)
                    .sum();
                Some(sampler::totals(&target.query, &samples, requests))
            }
            None => None,
        };
        let mut stats = stats::run_stats(StatsInput {
            record: &state.record,
            endpoints: &state.endpoints,
            totals: &totals,
            uncorrected: &uncorrected,
            dropped,
            thresholds: &state.thresholds,
            failures: failures
                .iter()
                .map(|f| {
                    (
                        f.endpoint,
                        f.kind.as_str(),
                        f.count,
                        f.last_message.as_str(),
                    )
                })
                .collect(),
            live: None,
            now_ms: now_ms(),
            lost_workers: &lost_workers,
            evicted_requests,
        });
        stats.target_cpu = target_cpu;
        stats.checks = self.check_stats(state).await?;
        Ok(stats)
    }

    /// The run's checks with their counts so far.
    async fn check_stats(&self, state: &RunState) -> Result<Vec<v1::CheckStat>, CollectorError> {
        let checks = self.store.checks(&state.record.id).await?;
        Ok(stats::check_stats(&checks, &state.endpoints))
    }

    /// A live run's statistics from the figures merged in a shared store
    /// (`merged`); `None` when the run has ended (also when another
    /// collector finished it: this one's state is then reloaded).
    async fn merged_stats(&self, run_id: &str) -> Result<Option<v1::RunStats>, CollectorError> {
        let state = self.runs.read(run_id).await?;
        if state.live.is_none() {
            return Ok(None);
        }
        let running = self
            .store
            .get_run(run_id)
            .await?
            .is_some_and(|record| record.status == RunStatus::Running);
        if !running {
            drop(state);
            self.runs.invalidate(run_id).await;
            return Ok(None);
        }
        let live = state.merged.lock().await.read(&*self.store, run_id).await?;
        let mut stats = live_stats(&state, &live);
        stats.checks = self.check_stats(&state).await?;
        Ok(Some(stats))
    }

    async fn stats(&self, run_id: &str) -> Result<v1::RunStats, CollectorError> {
        if self.store.shared()
            && let Some(stats) = self.merged_stats(run_id).await?
        {
            return Ok(stats);
        }
        let state = self.runs.read(run_id).await?;
        let live = state.with_live(|live| live_stats(&state, live));
        match live {
            Some(mut stats) => {
                stats.checks = self.check_stats(&state).await?;
                Ok(stats)
            }
            // Computed once: an ended run's numbers never change.
            None => Ok(state
                .final_stats
                .get_or_try_init(|| self.final_stats(&state))
                .await?
                .clone()),
        }
    }
}

/// A live run's statistics from its aggregate (thresholds checked live).
fn live_stats(state: &RunState, live: &LiveAggregate) -> v1::RunStats {
    stats::run_stats(StatsInput {
        record: &state.record,
        endpoints: &state.endpoints,
        totals: live.totals(),
        uncorrected: live.uncorrected(),
        dropped: live.dropped(),
        thresholds: &state.thresholds,
        failures: live.failures().collect(),
        live: Some(live.window()),
        now_ms: now_ms(),
        lost_workers: &[],
        evicted_requests: live.evicted(),
    })
}

#[tonic::async_trait]
impl Collector for CollectorService {
    async fn create_run(
        &self,
        request: Request<v1::CreateRunRequest>,
    ) -> Result<Response<v1::CreateRunResponse>, Status> {
        let request = request.into_inner();
        let span = tracing::info_span!("create_run", run_id = %request.run_id);
        self.create(request).instrument(span).await?;
        Ok(Response::new(v1::CreateRunResponse {}))
    }

    /// Applies the deltas in order; the first error ends the request (deltas
    /// before it stay applied, and re-sending them is harmless). A request
    /// that arrived whole is applied to the end even if its sender goes away
    /// meanwhile (hyper drops this future when the stream is reset): the
    /// last deltas of a killed worker still count.
    async fn push_deltas(
        &self,
        request: Request<v1::PushDeltasRequest>,
    ) -> Result<Response<v1::PushDeltasResponse>, Status> {
        let service = self.clone();
        let deltas = request.into_inner().deltas;
        // Lines logged while applying carry the run and worker (a push is
        // nearly always one worker's deltas of one run).
        let span = match deltas.first() {
            Some(first) => tracing::info_span!(
                "push",
                run_id = %first.run_id,
                worker_id = %first.worker_id,
                deltas = deltas.len()
            ),
            None => tracing::Span::none(),
        };
        // Its own task: a client that goes away mid-push does not cut the
        // live view's update of what was applied.
        let applying = tokio::spawn(async move { service.push(&deltas).await }.instrument(span));
        let response = applying
            .await
            .map_err(|error| Status::internal(format!("applying deltas failed: {error}")))??;
        Ok(Response::new(response))
    }

    async fn finish_run(
        &self,
        request: Request<v1::FinishRunRequest>,
    ) -> Result<Response<v1::FinishRunResponse>, Status> {
        let request = request.into_inner();
        let span = tracing::info_span!("finish_run", run_id = %request.run_id);
        Ok(Response::new(self.finish(request).instrument(span).await?))
    }

    async fn get_run_stats(
        &self,
        request: Request<v1::GetRunStatsRequest>,
    ) -> Result<Response<v1::RunStats>, Status> {
        Ok(Response::new(self.stats(&request.get_ref().run_id).await?))
    }

    async fn list_runs(
        &self,
        request: Request<v1::ListRunsRequest>,
    ) -> Result<Response<v1::ListRunsResponse>, Status> {
        let filter = convert::run_filter(request.get_ref());
        let records = self
            .store
            .list_runs(&filter)
            .await
            .map_err(CollectorError::from)?;
        Ok(Response::new(v1::ListRunsResponse {
            runs: records.into_iter().map(convert::run_summary).collect(),
        }))
    }
}
