//! The `baton.v1.Ingest` gRPC service.

use std::sync::Arc;

use baton_proto::{
    convert::{disruption_from_proto, event_from_proto},
    v1::{self, ingest_server::Ingest},
};
use futures::StreamExt;
use tonic::{Request, Response, Status};

use crate::{error::IngestError, ingestor::Ingestor, metrics::Metrics};

/// Most events one AppendBatch may carry.
pub const MAX_BATCH: usize = 1_000;
/// Hand-offs of one AppendBatch appended at once.
const BATCH_CONCURRENCY: usize = 64;

#[derive(Debug, Clone)]
pub struct IngestService {
    ingestor: Arc<Ingestor>,
    metrics: Arc<Metrics>,
}

impl IngestService {
    pub fn new(ingestor: Arc<Ingestor>) -> IngestService {
        IngestService {
            ingestor,
            metrics: Arc::default(),
        }
    }

    /// Counts appends in `metrics` (served on `/metrics`).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> IngestService {
        IngestService { metrics, ..self }
    }

    async fn append_one(&self, request: v1::AppendRequest) -> Result<v1::AppendResponse, Status> {
        let started = std::time::Instant::now();
        let event_type = request.event.as_ref().map(|e| e.r#type);
        let answer = self.append_checked(request).await;
        let took = started.elapsed();
        self.metrics
            .appended(event_type, &answer, |ok| ok.duplicate, took);
        answer
    }

    async fn append_checked(
        &self,
        request: v1::AppendRequest,
    ) -> Result<v1::AppendResponse, Status> {
        let event = request
            .event
            .ok_or_else(|| Status::invalid_argument("event: is required"))?;
        let event = event_from_proto(event).map_err(IngestError::from)?;
        let handoff_id = event.handoff_id.clone();
        let event_type = event.event_type;
        let accepted = self
            .ingestor
            .append(event, request.expected_version, baton_runtime::now())
            .await
            .inspect_err(|e| tracing::debug!(handoff = %handoff_id, event = %event_type, error = %e, "append refused"))?;
        Ok(v1::AppendResponse {
            version: accepted.version,
            stream_sequence: accepted.sequence,
            duplicate: accepted.duplicate,
        })
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    #[tracing::instrument(skip_all)]
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        self.append_one(request.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn append_batch(
        &self,
        request: Request<v1::AppendBatchRequest>,
    ) -> Result<Response<v1::AppendBatchResponse>, Status> {
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "requests: {} events in one batch; at most {MAX_BATCH}",
                requests.len()
            )));
        }
        // Events of one hand-off are appended in order, each conditional on
        // the one before; different hand-offs go concurrently, so their
        // JetStream acks overlap instead of queueing one round trip each.
        let mut by_handoff: Vec<(String, Vec<(usize, v1::AppendRequest)>)> = Vec::new();
        let mut group_of: std::collections::HashMap<String, usize> = Default::default();
        for (index, request) in requests.into_iter().enumerate() {
            let key = request
                .event
                .as_ref()
                .map(|e| e.handoff_id.clone())
                .unwrap_or_default();
            let group = *group_of.entry(key.clone()).or_insert_with(|| {
                by_handoff.push((key, Vec::new()));
                by_handoff.len() - 1
            });
            by_handoff[group].1.push((index, request));
        }
        let total: usize = by_handoff.iter().map(|(_, g)| g.len()).sum();
        let outcomes: Vec<Vec<(usize, v1::append_result::Outcome)>> =
            futures::stream::iter(by_handoff.into_iter().map(|(_, group)| async move {
                let mut done = Vec::with_capacity(group.len());
                for (index, request) in group {
                    let outcome = match self.append_one(request).await {
                        Ok(ok) => v1::append_result::Outcome::Ok(ok),
                        Err(status) => v1::append_result::Outcome::Error(v1::AppendError {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        }),
                    };
                    done.push((index, outcome));
                }
                done
            }))
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let mut results = vec![v1::AppendResult { outcome: None }; total];
        for (index, outcome) in outcomes.into_iter().flatten() {
            results[index].outcome = Some(outcome);
        }
        Ok(Response::new(v1::AppendBatchResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn append_disruption(
        &self,
        request: Request<v1::AppendDisruptionRequest>,
    ) -> Result<Response<v1::AppendDisruptionResponse>, Status> {
        let answer = self.append_disruption_checked(request).await;
        self.metrics.disruption(&answer, |ok| ok.duplicate);
        answer.map(Response::new)
    }
}

impl IngestService {
    async fn append_disruption_checked(
        &self,
        request: Request<v1::AppendDisruptionRequest>,
    ) -> Result<v1::AppendDisruptionResponse, Status> {
        let event = request
            .into_inner()
            .disruption
            .ok_or_else(|| Status::invalid_argument("disruption: is required"))?;
        let event = disruption_from_proto(event).map_err(IngestError::from)?;
        let id = event.disruption_id.clone();
        let accepted = self
            .ingestor
            .append_disruption(event, baton_runtime::now())
            .await
            .inspect_err(|e| tracing::debug!(disruption = %id, error = %e, "disruption refused"))?;
        Ok(v1::AppendDisruptionResponse {
            stream_sequence: accepted.sequence,
            duplicate: accepted.duplicate,
        })
    }
}
