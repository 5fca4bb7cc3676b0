//! The `baton.v1.Ingest` gRPC service.

use std::sync::Arc;

use baton_domain::access::Caller;
use baton_proto::{
    convert::{disruption_from_proto, event_from_proto},
    v1::{self, ingest_server::Ingest},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::{error::IngestError, ingestor::Ingestor};

/// Most events one AppendBatch may carry.
pub const MAX_BATCH: usize = 1_000;

/// Requests (an Append, a whole AppendBatch, an AppendDisruption) handled at
/// once by default; more are shed with RESOURCE_EXHAUSTED.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

#[derive(Debug, Clone)]
pub struct IngestService {
    ingestor: Arc<Ingestor>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
}

impl IngestService {
    pub fn new(ingestor: Arc<Ingestor>) -> IngestService {
        IngestService::with_max_in_flight(ingestor, DEFAULT_MAX_IN_FLIGHT)
    }

    /// At most `max_in_flight` requests are handled at once: a burst beyond
    /// that is answered RESOURCE_EXHAUSTED at once, instead of queueing
    /// (and holding memory) without bound.
    pub fn with_max_in_flight(ingestor: Arc<Ingestor>, max_in_flight: usize) -> IngestService {
        let max_in_flight = max_in_flight.max(1);
        IngestService {
            ingestor,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            tracing::debug!(max_in_flight = self.max_in_flight, "request shed");
            IngestError::AtCapacity(self.max_in_flight).into()
        })
    }

    async fn append_one(
        &self,
        request: v1::AppendRequest,
        caller: Option<&Caller>,
    ) -> Result<v1::AppendResponse, Status> {
        let event = request
            .event
            .ok_or_else(|| Status::invalid_argument("event: is required"))?;
        let event = event_from_proto(event).map_err(IngestError::from)?;
        let handoff_id = event.handoff_id.clone();
        let event_type = event.event_type;
        let accepted = self
            .ingestor
            .append_as(event, request.expected_version, baton_runtime::now(), caller)
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
        let _permit = self.admit()?;
        let caller = baton_runtime::security::caller(&request).cloned();
        self.append_one(request.into_inner(), caller.as_ref())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(skip_all)]
    async fn append_batch(
        &self,
        request: Request<v1::AppendBatchRequest>,
    ) -> Result<Response<v1::AppendBatchResponse>, Status> {
        let _permit = self.admit()?;
        let caller = baton_runtime::security::caller(&request).cloned();
        let requests = request.into_inner().requests;
        if requests.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "requests: {} events in one batch; at most {MAX_BATCH}",
                requests.len()
            )));
        }
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let outcome = match self.append_one(request, caller.as_ref()).await {
                Ok(ok) => v1::append_result::Outcome::Ok(ok),
                Err(status) => v1::append_result::Outcome::Error(v1::AppendError {
                    code: status.code() as i32,
                    message: status.message().to_owned(),
                }),
            };
            results.push(v1::AppendResult {
                outcome: Some(outcome),
            });
        }
        Ok(Response::new(v1::AppendBatchResponse { results }))
    }

    #[tracing::instrument(skip_all)]
    async fn append_disruption(
        &self,
        request: Request<v1::AppendDisruptionRequest>,
    ) -> Result<Response<v1::AppendDisruptionResponse>, Status> {
        let _permit = self.admit()?;
        let caller = baton_runtime::security::caller(&request).cloned();
        let event = request
            .into_inner()
            .disruption
            .ok_or_else(|| Status::invalid_argument("disruption: is required"))?;
        let event = disruption_from_proto(event).map_err(IngestError::from)?;
        let id = event.disruption_id.clone();
        let accepted = self
            .ingestor
            .append_disruption_as(event, baton_runtime::now(), caller.as_ref())
            .await
            .inspect_err(|e| tracing::debug!(disruption = %id, error = %e, "disruption refused"))?;
        Ok(Response::new(v1::AppendDisruptionResponse {
            stream_sequence: accepted.sequence,
            duplicate: accepted.duplicate,
        }))
    }
}
