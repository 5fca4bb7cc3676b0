//! The `baton.v1.Ingest` gRPC service.

use std::sync::Arc;

use baton_domain::access::Caller;
use baton_proto::{
    convert::{disruption_from_proto, event_from_proto},
    v1::{self, ingest_server::Ingest},
};
use baton_runtime::otel::opentelemetry::{
    context::FutureExt as _,
    trace::{SpanKind, TraceContextExt as _, Tracer as _},
    Context, KeyValue,
};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status};

use crate::{
    error::IngestError,
    ingestor::Ingestor,
    metrics::{InFlight, Metrics},
};

/// Most events one AppendBatch may carry.
pub const MAX_BATCH: usize = 1_000;
/// Hand-offs of one AppendBatch appended at once.
const BATCH_CONCURRENCY: usize = 64;

/// Requests (an Append, a whole AppendBatch, an AppendDisruption) handled at
/// once by default; more are shed with RESOURCE_EXHAUSTED.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// A request let in: counted in `baton_ingest_in_flight` while it holds
/// one of the `--max-in-flight` permits. The count goes first when it is
/// dropped, so it never exceeds the permits held.
#[derive(Debug)]
struct Admitted<'a> {
    _counted: InFlight<'a>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Debug, Clone)]
pub struct IngestService {
    ingestor: Arc<Ingestor>,
    metrics: Arc<Metrics>,
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
            metrics: Arc::default(),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// Counts appends in `metrics` (served on `/metrics`).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> IngestService {
        IngestService { metrics, ..self }
    }

    fn admit(&self) -> Result<Admitted<'_>, Status> {
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            tracing::debug!(max_in_flight = self.max_in_flight, "request shed");
            Status::from(IngestError::AtCapacity(self.max_in_flight))
        })?;
        Ok(Admitted {
            _counted: self.metrics.request_started(),
            _permit: permit,
        })
    }

    async fn append_one(
        &self,
        request: v1::AppendRequest,
        caller: Option<&Caller>,
    ) -> Result<v1::AppendResponse, Status> {
        let started = std::time::Instant::now();
        let event_type = request.event.as_ref().map(|e| e.r#type);
        let cx = append_span(&request);
        let answer = self.append_checked(request, caller).with_context(cx).await;
        let took = started.elapsed();
        self.metrics
            .appended(event_type, &answer, |ok| ok.duplicate, took);
        answer
    }

    async fn append_checked(
        &self,
        request: v1::AppendRequest,
        caller: Option<&Caller>,
    ) -> Result<v1::AppendResponse, Status> {
        let event = request
            .event
            .ok_or_else(|| Status::invalid_argument("event: is required"))?;
        // Whether it is history is the request's to ask; the event's
        // output-only fields are ignored.
        let event = event_from_proto(event).map_err(IngestError::from)?;
        let handoff_id = event.handoff_id.clone();
        let event_type = event.event_type;
        let accepted = self
            .ingestor
            .append_as(
                event,
                request.backfill,
                request.expected_version,
                baton_runtime::now(),
                caller,
            )
            .await
            .inspect_err(|e| tracing::debug!(handoff = loggable(&handoff_id), event = %event_type, error = %e, "append refused"))?;
        Ok(v1::AppendResponse {
            version: accepted.version,
            stream_sequence: accepted.sequence,
            duplicate: accepted.duplicate,
        })
    }

    async fn append_disruption_checked(
        &self,
        request: Request<v1::AppendDisruptionRequest>,
    ) -> Result<v1::AppendDisruptionResponse, Status> {
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
            .inspect_err(
                |e| tracing::debug!(disruption = loggable(&id), error = %e, "disruption refused"),
            )?;
        Ok(v1::AppendDisruptionResponse {
            stream_sequence: accepted.sequence,
            duplicate: accepted.duplicate,
        })
    }
}

/// The context an append runs in: a span `ingest.append` (child of the
/// caller's `traceparent`, or of the batch's span), the one JetStream's
/// message headers carry on. A no-op span when tracing is off.
fn append_span(request: &v1::AppendRequest) -> Context {
    if !baton_runtime::otel::exporting() && !Context::current().has_active_span() {
        // Tracing off and no caller's context: nothing to start or carry.
        return Context::current();
    }
    let handoff = request
        .event
        .as_ref()
        .and_then(|e| baton_domain::Token::parse(&e.handoff_id).ok());
    let mut attributes = vec![baton_runtime::otel::service(crate::NAME)];
    if let Some(handoff) = &handoff {
        attributes.push(KeyValue::new(
            "baton.handoff_id",
            loggable(handoff).to_owned(),
        ));
    }
    let tracer = baton_runtime::otel::tracer(crate::NAME);
    let span = tracer
        .span_builder("ingest.append")
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &Context::current());
    Context::current_with_span(span)
}

/// The caller's trace context from the request's metadata, or the current one.
fn caller_context<T>(request: &Request<T>) -> Context {
    baton_runtime::otel::remote_parent(request.metadata()).unwrap_or_else(Context::current)
}

/// An id for a log line: withheld when it looks like patient data (the
/// screen may be why it was refused).
fn loggable(id: &baton_domain::Token) -> &str {
    match baton_domain::privacy::screen(id.as_str()) {
        None => id.as_str(),
        Some(_) => "(withheld: looks like patient data)",
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    #[tracing::instrument(skip_all)]
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let _permit = match self.admit() {
            Ok(permit) => permit,
            Err(shed) => {
                let event_type = request.get_ref().event.as_ref().map(|e| e.r#type);
                let answer: Result<v1::AppendResponse, Status> = Err(shed);
                self.metrics.appended(
                    event_type,
                    &answer,
                    |ok| ok.duplicate,
                    std::time::Duration::ZERO,
                );
                return answer.map(Response::new);
            }
        };
        let caller = baton_runtime::security::caller(&request).cloned();
        let parent = caller_context(&request);
        self.append_one(request.into_inner(), caller.as_ref())
            .with_context(parent)
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
        let parent = caller_context(&request);
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
        let mut by_handoff: Vec<Vec<(usize, v1::AppendRequest)>> = Vec::new();
        let mut group_of: std::collections::HashMap<String, usize> = Default::default();
        for (index, request) in requests.into_iter().enumerate() {
            let key = request
                .event
                .as_ref()
                .map(|e| e.handoff_id.clone())
                .unwrap_or_default();
            let group = *group_of.entry(key).or_insert_with(|| {
                by_handoff.push(Vec::new());
                by_handoff.len() - 1
            });
            by_handoff[group].push((index, request));
        }
        let total: usize = by_handoff.iter().map(Vec::len).sum();
        let caller = caller.as_ref();
        let outcomes: Vec<Vec<(usize, v1::append_result::Outcome)>> =
            futures::stream::iter(by_handoff.into_iter().map(|group| async move {
                let mut done = Vec::with_capacity(group.len());
                for (index, request) in group {
                    let outcome = match self.append_one(request, caller).await {
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
            .with_context(parent)
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
        let answer = match self.admit() {
            Ok(_permit) => self.append_disruption_checked(request).await,
            Err(shed) => Err(shed),
        };
        self.metrics.disruption(&answer, |ok| ok.duplicate);
        answer.map(Response::new)
    }
}
