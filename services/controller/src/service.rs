//! The `Controller` gRPC service: thin handlers over the registry, the runs
//! and their tasks.

use std::pin::Pin;
use std::sync::Arc;

use cicada_proto::v1::controller_message::Msg as Out;
use cicada_proto::v1::controller_server::Controller;
use cicada_proto::v1::worker_message::Msg as In;
use cicada_proto::v1::{
    ControllerMessage, ListWorkersRequest, ListWorkersResponse, Register, Registered, RunProgress,
    ScaleRunRequest, ScaleRunResponse, StartRunRequest, StartRunResponse, StopRunRequest,
    StopRunResponse, StopWork, TakeRowsRequest, TakeRowsResponse, WatchRunRequest, WorkerMessage,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::registry::WorkerEntry;
use crate::runs::RunEvent;
use crate::{ControllerError, Shared, progress, start};

/// Messages queued per worker stream before sends fail.
const WORKER_QUEUE: usize = 32;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct ControllerService {
    shared: Arc<Shared>,
}

impl ControllerService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    type WorkerSessionStream = BoxStream<ControllerMessage>;
    type WatchRunStream = BoxStream<RunProgress>;

    async fn worker_session(
        &self,
        request: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::WorkerSessionStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(self.shared.config.register_timeout, inbound.message())
            .await
            .map_err(|_| ControllerError::Protocol("no Register message in time".into()))??;
        let register = match first.and_then(|message| message.msg) {
            Some(In::Register(register)) if !register.worker_id.is_empty() => register,
            Some(In::Register(_)) => {
                return Err(ControllerError::Protocol("worker_id must not be empty".into()).into());
            }
            _ => {
                return Err(
                    ControllerError::Protocol("the first message must be Register".into()).into(),
                );
            }
        };
        let (tx, rx) = mpsc::channel(WORKER_QUEUE);
        let registered = ControllerMessage {
            msg: Some(Out::Registered(Registered {
                worker_id: register.worker_id.clone(),
                heartbeat_interval_ms: self.shared.config.heartbeat_interval.as_millis() as u32,
            })),
        };
        tx.try_send(Ok(registered))
            .map_err(|_| Status::internal("failed to queue Registered"))?;
        tracing::info!(worker_id = %register.worker_id, cores = register.cores, hostname = %register.hostname, "worker connected");
        let worker_id = register.worker_id.clone();
        let cores = register.cores;
        let (conn, replaced) = self.shared.registry.add(register, tx);
        if let Some(old) = replaced {
            tracing::info!(worker_id = %worker_id, "worker reconnected; dropping its old stream");
            notify_gone(&self.shared, &old);
        }
        // A worker that connects during a run takes a share of it at once.
        if let Some(run) = self.shared.runs.active() {
            run.send(RunEvent::Joined {
                worker_id: worker_id.clone(),
                cores,
            });
        }
        tokio::spawn(serve_worker(self.shared.clone(), worker_id, conn, inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn start_run(
        &self,
        request: Request<StartRunRequest>,
    ) -> Result<Response<StartRunResponse>, Status> {
        let response = start::start_run(&self.shared, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn stop_run(
        &self,
        request: Request<StopRunRequest>,
    ) -> Result<Response<StopRunResponse>, Status> {
        stop_run(&self.shared, &request.into_inner().run_id)?;
        Ok(Response::new(StopRunResponse {}))
    }

    async fn watch_run(
        &self,
        request: Request<WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let run_id = request.into_inner().run_id;
        let run = self
            .shared
            .runs
            .get(&run_id)
            .ok_or(ControllerError::RunNotFound(run_id))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(progress::watch(self.shared.clone(), run, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn scale_run(
        &self,
        request: Request<ScaleRunRequest>,
    ) -> Result<Response<ScaleRunResponse>, Status> {
        scale_run(&self.shared, request.into_inner())?;
        Ok(Response::new(ScaleRunResponse {}))
    }

    async fn take_rows(
        &self,
        request: Request<TakeRowsRequest>,
    ) -> Result<Response<TakeRowsResponse>, Status> {
        Ok(Response::new(take_rows(
            &self.shared,
            request.into_inner(),
        )?))
    }

    async fn list_workers(
        &self,
        _request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        Ok(Response::new(ListWorkersResponse {
            workers: self.shared.registry.list(),
        }))
    }
}

/// `TakeRows`: leases rows of a `unique` data set of a running run; the
/// call that takes the last row tells the run's life cycle task.
fn take_rows(
    shared: &Shared,
    request: TakeRowsRequest,
) -> Result<TakeRowsResponse, ControllerError> {
    let run = shared
        .runs
        .get(&request.run_id)
        .ok_or_else(|| ControllerError::RunNotFound(request.run_id.clone()))?;
    let data = run.data.get().ok_or_else(|| {
        ControllerError::InvalidArgument(format!(
            "run {} has no data sets here (taken over after a controller restart?)",
            request.run_id
        ))
    })?;
    let (response, exhaustion) = data.take(
        request.set as usize,
        request.count,
        &request.worker_id,
        request.drained,
    )?;
    if let Some(exhaustion) = exhaustion {
        tracing::info!(run_id = %run.id, set = %exhaustion.set, rows = exhaustion.rows, "a unique data set ran out");
        run.send(RunEvent::DataExhausted(exhaustion));
    }
    Ok(response)
}

/// `StopRun` (gRPC and web): asks the run's life cycle task to stop it.
pub(crate) fn stop_run(shared: &Shared, run_id: &str) -> Result<(), ControllerError> {
    let run = shared
        .runs
        .get(run_id)
        .ok_or_else(|| ControllerError::RunNotFound(run_id.to_owned()))?;
    run.send(RunEvent::Stop);
    Ok(())
}

/// `ScaleRun` (gRPC and web): checks the change against the run's model and
/// hands it to the run's life cycle task.
pub(crate) fn scale_run(shared: &Shared, request: ScaleRunRequest) -> Result<(), ControllerError> {
    let run = shared
        .runs
        .get(&request.run_id)
        .ok_or_else(|| ControllerError::RunNotFound(request.run_id.clone()))?;
    if run.status.borrow().is_terminal() {
        return Err(ControllerError::InvalidArgument(format!(
            "run {} has ended",
            request.run_id
        )));
    }
    let open = run.status.borrow().open;
    match (open, request.users, request.rate) {
        (true, None, Some(rate)) => {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ControllerError::InvalidArgument(
                    "rate must be a positive number of iterations per second".into(),
                ));
            }
            run.send(RunEvent::ScaleRate { rate });
            return Ok(());
        }
        (true, _, _) => {
            return Err(ControllerError::InvalidArgument(
                "this run uses the open model (a rate); change it with rate".into(),
            ));
        }
        (false, _, Some(_)) => {
            return Err(ControllerError::InvalidArgument(
                "this run uses the closed model (users); change it with users".into(),
            ));
        }
        (false, _, None) => {}
    }
    let Some(users) = request.users else {
        return Err(ControllerError::InvalidArgument(
            "give users (or rate) to scale to".into(),
        ));
    };
    if !(request.spawn_rate.is_finite() && request.spawn_rate >= 0.0) {
        return Err(ControllerError::InvalidArgument(
            "spawn_rate must be a positive number (or 0 for the run's own)".into(),
        ));
    }
    run.send(RunEvent::Scale {
        users,
        spawn_rate: (request.spawn_rate > 0.0).then_some(request.spawn_rate),
    });
    Ok(())
}

/// Reads one worker's stream until it ends (or the controller shuts down),
/// then removes the worker.
async fn serve_worker(
    shared: Arc<Shared>,
    worker_id: String,
    conn: u64,
    mut inbound: Streaming<WorkerMessage>,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            () = crate::shut_down(&mut shutdown) => break,
        };
        match message {
            Ok(Some(message)) => handle(&shared, &worker_id, conn, message),
            Ok(None) => break,
            Err(status) => {
                tracing::info!(worker_id = %worker_id, %status, "worker stream failed");
                break;
            }
        }
    }
    // Dropping the entry drops the last sender: the response stream ends.
    if let Some(entry) = shared.registry.remove(&worker_id, conn) {
        tracing::info!(worker_id = %worker_id, "worker disconnected");
        notify_gone(&shared, &entry);
    }
}

fn handle(shared: &Shared, worker_id: &str, conn: u64, message: WorkerMessage) {
    match message.msg {
        Some(In::Heartbeat(heartbeat)) => {
            stop_orphaned_work(shared, worker_id, &heartbeat.run_id);
            shared.registry.heartbeat(worker_id, conn, heartbeat);
        }
        Some(In::WorkDone(done)) => {
            tracing::info!(worker_id, run_id = %done.run_id, last_seq = done.last_seq, requests = done.requests, error = %done.error, "work done");
            shared.registry.work_done(worker_id, conn, &done.run_id);
            if let Some(run) = shared.runs.get(&done.run_id) {
                run.send(RunEvent::Done {
                    worker_id: worker_id.to_owned(),
                    done,
                });
            }
        }
        Some(In::Register(Register { .. })) => {
            tracing::warn!(worker_id, "ignoring a second Register on one stream");
        }
        None => {}
    }
}

/// A worker still running a run this controller does not know or has
/// already ended, once the recovery after a restart is over (that run has
/// been ended in the store), is told to stop: otherwise it would load the
/// target until its safety-net limit, or for ever (a worker that came back
/// after the run's end, or after recovery took its snapshot of the workers).
fn stop_orphaned_work(shared: &Shared, worker_id: &str, run_id: &str) {
    let live = |run: Arc<crate::runs::Run>| !run.status.borrow().is_terminal();
    if run_id.is_empty()
        || !shared.recovered.load(std::sync::atomic::Ordering::Relaxed)
        || shared.runs.get(run_id).is_some_and(live)
    {
        return;
    }
    tracing::warn!(
        worker_id,
        run_id,
        "worker runs an unknown or ended run; stopping it"
    );
    let stop = ControllerMessage {
        msg: Some(Out::StopWork(StopWork {
            run_id: run_id.to_owned(),
            grace_ms: shared.config.default_stop_grace.as_millis() as u64,
        })),
    };
    if let Some(tx) = shared.registry.sender(worker_id) {
        let _ = tx.try_send(Ok(stop));
    }
}

/// Drops the workers that missed three heartbeats: their streams end (a live
/// worker reconnects and rejoins) and their runs re-place their users.
pub(crate) async fn expire_silent_workers(shared: Arc<Shared>) {
    let period = shared.config.heartbeat_interval;
    let mut shutdown = shared.shutdown.clone();
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = crate::shut_down(&mut shutdown) => return,
        }
        for entry in shared.registry.expire(period * MISSED_HEARTBEATS) {
            let worker_id = &entry.register.worker_id;
            tracing::warn!(worker_id = %worker_id, "worker missed {MISSED_HEARTBEATS} heartbeats; marked missing");
            notify_gone(&shared, &entry);
        }
    }
}

/// Heartbeats a worker may miss before it counts as missing.
const MISSED_HEARTBEATS: u32 = 3;

fn notify_gone(shared: &Shared, entry: &WorkerEntry) {
    if let Some(run) = entry.assigned.as_deref().and_then(|id| shared.runs.get(id)) {
        run.send(RunEvent::Gone {
            worker_id: entry.register.worker_id.clone(),
            last: entry.last_heard(&run.id),
        });
    }
}
