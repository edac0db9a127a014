//! `cicada.v1.History`: the run history queries over gRPC, thin over
//! `cicada_history` on the collector's store (the same functions the HTTP
//! API and the CLI's local mode call). Arguments are checked and errors
//! mapped to gRPC codes by `cicada_history::grpc`, in one place.

use std::sync::Arc;

use cicada_history::grpc;
use cicada_history::{HistoryError, RunInfo};
use cicada_proto::v1 as pb;
use cicada_proto::v1::history_server::History;
use cicada_store::Store;
use tonic::{Request, Response, Status};

/// The History service on a store.
#[derive(Clone)]
pub struct HistoryService {
    store: Arc<dyn Store>,
}

impl HistoryService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// The status for `error`, logged when the fault is the server's.
fn status(error: HistoryError) -> Status {
    let status = grpc::status(&error);
    if matches!(
        status.code(),
        tonic::Code::Internal | tonic::Code::Unavailable
    ) {
        tracing::warn!(%error, "history request failed");
    }
    status
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl History for HistoryService {
    async fn search_runs(
        &self,
        request: Request<pb::SearchRunsRequest>,
    ) -> Answer<pb::SearchRunsResponse> {
        let answer = async {
            let filter = grpc::filter_of(request.get_ref())?;
            cicada_history::search(&*self.store, &filter).await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(pb::SearchRunsResponse {
            runs: answer.into_iter().map(Into::into).collect(),
        }))
    }

    async fn show_run(&self, request: Request<pb::ShowRunRequest>) -> Answer<pb::HistoryRunDetail> {
        let request = request.into_inner();
        let detail = async {
            let run_id = grpc::run_id_of(&request.run_id, "run_id")?;
            let window = grpc::window_of(request.window)?;
            cicada_history::show(&*self.store, run_id, window).await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(detail.into()))
    }

    async fn compare_runs(
        &self,
        request: Request<pb::CompareRunsRequest>,
    ) -> Answer<pb::HistoryComparison> {
        let request = request.into_inner();
        let comparison = async {
            let a = grpc::run_id_of(&request.run_a, "run_a")?;
            let b = grpc::run_id_of(&request.run_b, "run_b")?;
            let window = grpc::window_of(request.window)?;
            let tolerance = grpc::tolerance_of(request.tolerance)?;
            cicada_history::compare(&*self.store, a, b, window, tolerance).await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(comparison.into()))
    }

    async fn baseline(&self, request: Request<pb::BaselineRequest>) -> Answer<pb::HistoryRun> {
        let request = request.into_inner();
        let run = async {
            let run_id = grpc::run_id_of(&request.run_id, "run_id")?;
            let baseline = cicada_history::latest_passing_baseline(&*self.store, run_id).await?;
            // The baseline was just found; gone now means deleted meanwhile.
            let record = self
                .store
                .get_run(&baseline)
                .await?
                .ok_or(HistoryError::NotFound(baseline))?;
            Ok::<_, HistoryError>(RunInfo::from(&record))
        }
        .await
        .map_err(status)?;
        Ok(Response::new(run.into()))
    }

    async fn trend(&self, request: Request<pb::TrendRequest>) -> Answer<pb::HistoryTrend> {
        let request = request.into_inner();
        let trend = async {
            if request.scenario_name.is_empty() {
                return Err(HistoryError::Invalid(
                    "scenario_name is empty; give the scenario's name:".to_owned(),
                ));
            }
            let metric = grpc::metric_of(&request.metric)?;
            let last = grpc::last_of(request.last)?;
            let endpoint = grpc::endpoint_of(&request.endpoint);
            cicada_history::trend(&*self.store, &request.scenario_name, metric, endpoint, last)
                .await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(trend.into()))
    }

    async fn label_run(
        &self,
        request: Request<pb::LabelRunRequest>,
    ) -> Answer<pb::LabelRunResponse> {
        let request = request.into_inner();
        let run = async {
            let run_id = grpc::run_id_of(&request.run_id, "run_id")?;
            cicada_history::label(&*self.store, run_id, &request.key, request.value.as_deref())
                .await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(pb::LabelRunResponse {
            run: Some(run.into()),
        }))
    }

    async fn delete_run(
        &self,
        request: Request<pb::DeleteRunRequest>,
    ) -> Answer<pb::DeleteRunResponse> {
        let request = request.into_inner();
        async {
            let run_id = grpc::run_id_of(&request.run_id, "run_id")?;
            cicada_history::delete(&*self.store, run_id).await
        }
        .await
        .map_err(status)?;
        Ok(Response::new(pb::DeleteRunResponse {}))
    }
}
