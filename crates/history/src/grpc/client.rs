//! [`HistoryClient`]: the History service behind the signatures of the
//! local queries.

use cicada_proto::auth::AuthChannel;
use cicada_proto::v1 as pb;
use cicada_proto::v1::history_client::HistoryClient as Generated;
use cicada_store::RunFilter;

use crate::{Comparison, HistoryError, Metric, RunDetail, RunInfo, Tolerance, Trend, Window};

/// Largest answer accepted (the per-second series of a day-long run): what
/// the collector may send.
pub const MAX_MESSAGE_BYTES: usize = cicada_proto::MAX_COLLECTOR_MESSAGE_BYTES;

/// A client of a collector's `cicada.v1.History` service. Cheap to clone
/// (clones share the channel). Errors are the [`HistoryError`] variants the
/// local functions return ([`crate::grpc::error`]).
#[derive(Clone, Debug)]
pub struct HistoryClient {
    inner: Generated<AuthChannel>,
}

impl HistoryClient {
    /// A client on `channel` (which carries the collector's token, if any).
    pub fn new(channel: AuthChannel) -> Self {
        Self {
            inner: Generated::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// Stored runs matching `filter`, newest first ([`crate::search`]).
    pub async fn search(&self, filter: &RunFilter) -> Result<Vec<RunInfo>, HistoryError> {
        let answer = self
            .inner
            .clone()
            .search_runs(super::search_request(filter))
            .await
            .map_err(super::error)?;
        Ok(answer
            .into_inner()
            .runs
            .into_iter()
            .map(RunInfo::from)
            .collect())
    }

    /// One run over `window` ([`crate::show`]).
    pub async fn show(&self, run_id: &str, window: Window) -> Result<RunDetail, HistoryError> {
        let request = pb::ShowRunRequest {
            run_id: run_id.to_owned(),
            window: Some(window.into()),
        };
        let answer = self
            .inner
            .clone()
            .show_run(request)
            .await
            .map_err(super::error)?;
        answer.into_inner().try_into()
    }

    /// Run `b` against the baseline `a` ([`crate::compare`]).
    pub async fn compare(
        &self,
        a: &str,
        b: &str,
        window: Window,
        tolerance: Tolerance,
    ) -> Result<Comparison, HistoryError> {
        let request = pb::CompareRunsRequest {
            run_a: a.to_owned(),
            run_b: b.to_owned(),
            window: Some(window.into()),
            tolerance: Some(tolerance.0),
        };
        let answer = self
            .inner
            .clone()
            .compare_runs(request)
            .await
            .map_err(super::error)?;
        answer.into_inner().try_into()
    }

    /// The latest passing run of `run_id`'s scenario started before it
    /// ([`crate::latest_passing_baseline`], which answers its id).
    pub async fn baseline(&self, run_id: &str) -> Result<RunInfo, HistoryError> {
        let request = pb::BaselineRequest {
            run_id: run_id.to_owned(),
        };
        let answer = self
            .inner
            .clone()
            .baseline(request)
            .await
            .map_err(super::error)?;
        Ok(answer.into_inner().into())
    }

    /// `metric` of `endpoint` (all endpoints together when `None`) over the
    /// latest `last` finished runs of `scenario` ([`crate::trend`]).
    pub async fn trend(
        &self,
        scenario: &str,
        metric: Metric,
        endpoint: Option<&str>,
        last: u32,
    ) -> Result<Trend, HistoryError> {
        if last == 0 {
            // 0 asks the server for its default; locally it is an error.
            return Err(HistoryError::Invalid(
                "--last must be at least 1".to_owned(),
            ));
        }
        let request = pb::TrendRequest {
            scenario_name: scenario.to_owned(),
            metric: metric.name().to_owned(),
            endpoint: endpoint.unwrap_or_default().to_owned(),
            last,
        };
        let answer = self
            .inner
            .clone()
            .trend(request)
            .await
            .map_err(super::error)?;
        answer.into_inner().try_into()
    }

    /// Sets label `key` of a run to `value`, or removes it when `value` is
    /// `None`, and returns the run ([`crate::label`]).
    pub async fn label(
        &self,
        run_id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<RunInfo, HistoryError> {
        let request = pb::LabelRunRequest {
            run_id: run_id.to_owned(),
            key: key.to_owned(),
            value: value.map(str::to_owned),
        };
        let answer = self
            .inner
            .clone()
            .label_run(request)
            .await
            .map_err(super::error)?;
        let run = answer.into_inner().run;
        Ok(run
            .ok_or_else(|| super::convert::malformed("the labelled run is missing"))?
            .into())
    }

    /// Deletes an ended run and everything stored with it ([`crate::delete`]).
    pub async fn delete(&self, run_id: &str) -> Result<(), HistoryError> {
        let request = pb::DeleteRunRequest {
            run_id: run_id.to_owned(),
        };
        self.inner
            .clone()
            .delete_run(request)
            .await
            .map_err(super::error)?;
        Ok(())
    }
}
