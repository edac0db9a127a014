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
    StopRunResponse, WatchRunRequest, WorkerMessage,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

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
        let (conn, replaced) = self.shared.registry.add(register, tx);
        if let Some(old) = replaced {
            tracing::info!(worker_id = %worker_id, "worker reconnected; dropping its old stream");
            notify_gone(&self.shared, &worker_id, old.assigned.as_deref());
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
        let run_id = request.into_inner().run_id;
        let run = self
            .shared
            .runs
            .get(&run_id)
            .ok_or(ControllerError::RunNotFound(run_id))?;
        run.send(RunEvent::Stop);
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
        _request: Request<ScaleRunRequest>,
    ) -> Result<Response<ScaleRunResponse>, Status> {
        Err(Status::unimplemented("ScaleRun is not wired yet"))
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
        notify_gone(&shared, &worker_id, entry.assigned.as_deref());
    }
}

fn handle(shared: &Shared, worker_id: &str, conn: u64, message: WorkerMessage) {
    match message.msg {
        Some(In::Heartbeat(heartbeat)) => shared.registry.heartbeat(worker_id, conn, heartbeat),
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

fn notify_gone(shared: &Shared, worker_id: &str, run_id: Option<&str>) {
    if let Some(run) = run_id.and_then(|id| shared.runs.get(id)) {
        run.send(RunEvent::Gone {
            worker_id: worker_id.to_owned(),
        });
    }
}
