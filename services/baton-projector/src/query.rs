//! The `baton.v1.Query` gRPC service over the views.

use std::{pin::Pin, sync::Arc};

use baton_domain::{event::ValidationError, Token};
use baton_proto::{
    convert::{
        clock_to_proto, duration_to_proto, event_to_proto, optional_token, priority_to_proto,
        status_from_proto, status_to_proto, timestamp_from_proto, timestamp_to_proto, token,
    },
    v1::{self, query_server::Query},
};
use baton_views::{
    projection::clocks_of, BreachFilter, BreachRecord, HandoffFilter, HandoffView, ViewsError,
};
use futures::{Stream, StreamExt};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::Shared;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000;

/// Query errors, and their one mapping to gRPC status codes.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    NotFound(String),
    #[error(
        "the views cannot be read ({0}); restart the projector to rebuild them from the stream"
    )]
    Views(#[from] ViewsError),
    #[error("nats unavailable: {0}")]
    Unavailable(String),
}

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Status {
        let message = error.to_string();
        match error {
            QueryError::Invalid(_) => Status::invalid_argument(message),
            QueryError::NotFound(_) => Status::not_found(message),
            QueryError::Views(_) => Status::internal(message),
            QueryError::Unavailable(_) => Status::unavailable(message),
        }
    }
}

pub fn breach_to_proto(record: &BreachRecord) -> v1::Breach {
    v1::Breach {
        handoff_id: record.handoff_id.to_string(),
        policy_id: record.policy_id.to_string(),
        supplier: record.supplier.to_string(),
        customer: record.customer.to_string(),
        deadline: Some(timestamp_to_proto(record.deadline)),
        breached_at: Some(timestamp_to_proto(record.deadline)),
        kind: record.kind.to_string(),
        priority: priority_to_proto(record.priority) as i32,
        open: record.stopped_at.is_none(),
        stopped_at: record.stopped_at.map(timestamp_to_proto),
        corrected: false,
    }
}

#[derive(Debug, Clone)]
pub struct QueryService {
    shared: Arc<Shared>,
    client: async_nats::Client,
    /// Ends open watch streams, so a graceful shutdown does not wait on them.
    shutdown: tokio_util::sync::CancellationToken,
}

impl QueryService {
    pub fn new(
        shared: Arc<Shared>,
        client: async_nats::Client,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> QueryService {
        QueryService {
            shared,
            client,
            shutdown,
        }
    }

    fn handoff_to_proto(&self, view: HandoffView, with_events: bool) -> v1::Handoff {
        let now = baton_runtime::now();
        let h = &view.handoff;
        let slas = clocks_of(&self.shared.catalog, h, &view.events, now)
            .iter()
            .map(clock_to_proto)
            .collect();
        v1::Handoff {
            handoff_id: h.handoff_id.to_string(),
            kind: h.kind.to_string(),
            supplier: h.supplier.to_string(),
            customer: h.customer.to_string(),
            priority: priority_to_proto(h.priority) as i32,
            status: status_to_proto(h.status) as i32,
            version: h.version,
            events: if with_events {
                view.events.iter().map(event_to_proto).collect()
            } else {
                Vec::new()
            },
            slas,
            catalog_version: self.shared.catalog.version().to_owned(),
        }
    }
}

fn page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE as usize,
        n => n.min(MAX_PAGE) as usize,
    }
}

fn page_token(token: &str) -> Option<&str> {
    (!token.is_empty()).then_some(token)
}

type BreachStream = Pin<Box<dyn Stream<Item = Result<v1::Breach, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    async fn get_handoff(
        &self,
        request: Request<v1::GetHandoffRequest>,
    ) -> Result<Response<v1::Handoff>, Status> {
        let id = token("handoff_id", &request.into_inner().handoff_id).map_err(QueryError::from)?;
        let view = self
            .shared
            .views
            .handoff(&id)
            .map_err(QueryError::from)?
            .ok_or_else(|| QueryError::NotFound(format!("hand-off {id} is not known")))?;
        Ok(Response::new(self.handoff_to_proto(view, true)))
    }

    async fn list_handoffs(
        &self,
        request: Request<v1::ListHandoffsRequest>,
    ) -> Result<Response<v1::ListHandoffsResponse>, Status> {
        let r = request.into_inner();
        let filter = HandoffFilter {
            supplier: optional_token("supplier", &r.supplier).map_err(QueryError::from)?,
            customer: optional_token("customer", &r.customer).map_err(QueryError::from)?,
            kind: optional_token("kind", &r.kind).map_err(QueryError::from)?,
            status: status_from_proto(r.status).map_err(QueryError::from)?,
        };
        let page = self
            .shared
            .views
            .list_handoffs(&filter, page_token(&r.page_token), page_size(r.page_size))
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::ListHandoffsResponse {
            handoffs: page
                .items
                .into_iter()
                .map(|v| self.handoff_to_proto(v, false))
                .collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn list_breaches(
        &self,
        request: Request<v1::ListBreachesRequest>,
    ) -> Result<Response<v1::ListBreachesResponse>, Status> {
        let r = request.into_inner();
        let filter = BreachFilter {
            policy: optional_token("policy_id", &r.policy_id).map_err(QueryError::from)?,
            supplier: optional_token("supplier", &r.supplier).map_err(QueryError::from)?,
            customer: optional_token("customer", &r.customer).map_err(QueryError::from)?,
            open_only: r.open_only,
        };
        let page = self
            .shared
            .views
            .list_breaches(&filter, page_token(&r.page_token), page_size(r.page_size))
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::ListBreachesResponse {
            breaches: page.items.iter().map(breach_to_proto).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_compliance(
        &self,
        request: Request<v1::GetComplianceRequest>,
    ) -> Result<Response<v1::Compliance>, Status> {
        let r = request.into_inner();
        let policy = token("policy_id", &r.policy_id).map_err(QueryError::from)?;
        if self.shared.catalog.policy(policy.as_str()).is_none() {
            return Err(QueryError::NotFound(format!(
                "policy_id: {policy} is not a promise in the catalog"
            ))
            .into());
        }
        let supplier = r
            .supplier
            .as_deref()
            .map(|s| token("supplier", s))
            .transpose()
            .map_err(QueryError::from)?;
        let customer = r
            .customer
            .as_deref()
            .map(|c| token("customer", c))
            .transpose()
            .map_err(QueryError::from)?;
        let from = r
            .from
            .as_ref()
            .map(|t| timestamp_from_proto("from", t))
            .transpose()
            .map_err(QueryError::from)?;
        let to =
            r.to.as_ref()
                .map(|t| timestamp_from_proto("to", t))
                .transpose()
                .map_err(QueryError::from)?;
        let tallies = self
            .shared
            .views
            .compliance(&policy, supplier.as_ref(), customer.as_ref(), from, to)
            .map_err(QueryError::from)?;
        let quantile = |q| tallies.durations.quantile(q).map(duration_to_proto);
        Ok(Response::new(v1::Compliance {
            policy_id: policy.to_string(),
            total: tallies.total(),
            met: tallies.met,
            breached: tallies.breached,
            open: tallies.open,
            compliance: tallies.compliance(),
            p50: quantile(0.5),
            p90: quantile(0.9),
            p95: quantile(0.95),
            max: quantile(1.0),
            cancelled: tallies.cancelled,
        }))
    }

    type WatchBreachesStream = BreachStream;

    async fn watch_breaches(
        &self,
        request: Request<v1::WatchBreachesRequest>,
    ) -> Result<Response<Self::WatchBreachesStream>, Status> {
        let r = request.into_inner();
        let policy: Option<Token> =
            optional_token("policy_id", &r.policy_id).map_err(QueryError::from)?;
        let supplier = optional_token("supplier", &r.supplier).map_err(QueryError::from)?;
        let customer = optional_token("customer", &r.customer).map_err(QueryError::from)?;
        let filter = baton_log::subject::breach_filter(
            policy.as_ref(),
            supplier.as_ref(),
            customer.as_ref(),
        );
        let subscription = self
            .client
            .subscribe(filter)
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        // Make sure the server has the subscription before the client is
        // told the watch is open, so no breach slips between the two.
        self.client
            .flush()
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        let stream = subscription
            .take_until(self.shutdown.clone().cancelled_owned())
            .filter_map(|message| async move {
            match v1::Breach::decode(message.payload) {
                Ok(breach) => Some(Ok(breach)),
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "not a breach payload, not forwarded");
                    None
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
