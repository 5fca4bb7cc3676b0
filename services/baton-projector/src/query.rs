//! The `baton.v1.Query` gRPC service over the views.

use std::{pin::Pin, sync::Arc};

use baton_domain::{event::ValidationError, Timestamp, Token};
use baton_proto::{
    convert::{
        clock_to_proto, duration_to_proto, optional_token, priority_to_proto, record_to_proto,
        status_from_proto, status_to_proto, timestamp_from_proto, timestamp_to_proto, token,
    },
    v1::{self, query_server::Query},
};
use baton_views::{
    projection::clocks_of, BreachFilter, Bucketing, ComplianceScope, HandoffFilter, HandoffView,
    OpenClock, ViewsError,
};

use crate::{
    present::{cell_to_proto, correction_to_proto, disruption_to_proto, tallies_to_proto},
    relay::Relayed,
};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use tonic::{Request, Response, Status};

use crate::Shared;

const DEFAULT_PAGE: u32 = 100;
/// Most buckets one GetCompliance answers: a year of hours, or 27 years of days.
pub const MAX_BUCKETS: usize = 10_000;
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
    /// Reading failed, not the views: nothing to rebuild.
    #[error("the query could not be answered: {0}")]
    Task(#[from] crate::TaskGone),
    #[error("the views are being rebuilt from the stream ({applied} events applied so far): try again shortly")]
    Rebuilding { applied: u64 },
    /// A timeline's events could not be read from the log.
    #[error(transparent)]
    Timeline(#[from] crate::timeline::TimelineError),
    /// Not current, and nothing to build them from until NATS is back.
    #[error("the views are not current ({applied} events applied so far): {reason}")]
    NatsUnreachable { applied: u64, reason: String },
}

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Status {
        let message = error.to_string();
        match error {
            QueryError::Invalid(_) => Status::invalid_argument(message),
            QueryError::NotFound(_) => Status::not_found(message),
            QueryError::Views(_) | QueryError::Task(_) => Status::internal(message),
            QueryError::Rebuilding { .. }
            | QueryError::NatsUnreachable { .. }
            | QueryError::Timeline(_) => Status::unavailable(message),
        }
    }
}

impl From<crate::WorkError> for QueryError {
    fn from(e: crate::WorkError) -> QueryError {
        match e {
            crate::WorkError::Views(e) => QueryError::Views(e),
            crate::WorkError::Task(e) => QueryError::Task(e),
        }
    }
}

pub use crate::present::{breach_to_proto, warning_to_proto};

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

    /// Incomplete views would show wrong figures: refuse until current.
    fn ensure_current(&self) -> Result<(), QueryError> {
        if self.shared.is_current() {
            return Ok(());
        }
        let applied = self.shared.applied();
        let nats = self
            .shared
            .health
            .readiness()
            .fault_reason(crate::NATS_FAULT);
        Err(match nats {
            Some(reason) => QueryError::NatsUnreachable { applied, reason },
            None => QueryError::Rebuilding { applied },
        })
    }

    /// What a GetCompliance request asks about: a promise of the catalog
    /// (or all), a supplier, a customer and a window.
    fn compliance_scope(
        &self,
        r: &v1::GetComplianceRequest,
    ) -> Result<ComplianceScope, QueryError> {
        let policy = optional_token("policy_id", &r.policy_id)?;
        if let Some(policy) = policy
            .as_ref()
            .filter(|p| self.shared.catalog.policy(p.as_str()).is_none())
        {
            return Err(QueryError::NotFound(format!(
                "policy_id: {policy} is not a promise in the catalog"
            )));
        }
        let department = |field: &str, value: &Option<String>| {
            value.as_deref().map(|v| token(field, v)).transpose()
        };
        Ok(ComplianceScope {
            policy,
            supplier: department("supplier", &r.supplier)?,
            customer: department("customer", &r.customer)?,
            from: optional_time("from", &r.from)?,
            to: optional_time("to", &r.to)?,
        })
    }

    /// The hand-off as answered: with `events` (its timeline, read from
    /// the log) or without (a list's row).
    fn handoff_to_proto(
        &self,
        view: HandoffView,
        events: &[baton_domain::RecordedEvent],
    ) -> v1::Handoff {
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
            events: events
                .iter()
                .map(|r| v1::HandoffEvent {
                    entry_lag: Some(duration_to_proto(r.entry_lag())),
                    ..record_to_proto(r)
                })
                .collect(),
            slas,
            catalog_version: self.shared.catalog.version().to_owned(),
            rating: h.rating.map(u32::from).unwrap_or(0),
            disruptions: view
                .disruptions
                .iter()
                .map(|(d, _)| d.to_string())
                .collect(),
            requested_at: Some(timestamp_to_proto(h.requested_at)),
            corrections: view.corrections.iter().map(correction_to_proto).collect(),
        }
    }

    /// The signals `pick` takes from what these views relay, until the
    /// client goes or the service stops. A watcher that falls more than
    /// [`crate::relay::CAPACITY`] signals behind is told so and closed.
    fn watch<T: Send + 'static>(
        &self,
        pick: impl Fn(&Relayed) -> Option<T> + Send + 'static,
    ) -> SignalStream<T> {
        let stream = BroadcastStream::new(self.shared.relay.subscribe())
            .take_until(self.shutdown.clone().cancelled_owned())
            .filter_map(move |item| {
                let item = match item {
                    Ok(signal) => pick(&signal).map(Ok),
                    Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Err(Status::aborted(format!(
                        "this watch fell {missed} signals behind and is closed: open it again, and list what was missed with ListBreaches"
                    )))),
                };
                std::future::ready(item)
            })
            // A watcher told it fell behind hears nothing more.
            .scan(false, |ended, item| {
                if *ended {
                    return std::future::ready(None);
                }
                *ended = item.is_err();
                std::future::ready(Some(item))
            });
        Box::pin(stream)
    }
}

/// Policy, supplier and customer: the optional filters every signal watch takes.
#[derive(Debug, Clone)]
struct SignalFilters {
    policy: Option<Token>,
    supplier: Option<Token>,
    customer: Option<Token>,
}

impl SignalFilters {
    fn parse(policy: &str, supplier: &str, customer: &str) -> Result<SignalFilters, QueryError> {
        Ok(SignalFilters {
            policy: optional_token("policy_id", policy)?,
            supplier: optional_token("supplier", supplier)?,
            customer: optional_token("customer", customer)?,
        })
    }

    fn admit(&self, policy: &str, supplier: &str, customer: &str) -> bool {
        let matches =
            |want: &Option<Token>, have: &str| want.as_ref().is_none_or(|w| w.as_str() == have);
        matches(&self.policy, policy)
            && matches(&self.supplier, supplier)
            && matches(&self.customer, customer)
    }
}

fn optional_time(
    field: &str,
    at: &Option<prost_types::Timestamp>,
) -> Result<Option<Timestamp>, QueryError> {
    Ok(at
        .as_ref()
        .map(|t| timestamp_from_proto(field, t))
        .transpose()?)
}

/// How a GetCompliance request wants its figures bucketed, if at all;
/// days in `time_zone` (UTC when empty).
fn bucketing(bucket: i32, time_zone: &str) -> Result<Option<Bucketing>, QueryError> {
    match v1::Bucket::try_from(bucket) {
        Ok(v1::Bucket::Unspecified) => Ok(None),
        Ok(v1::Bucket::Hour) => Ok(Some(Bucketing::Hour)),
        Ok(v1::Bucket::Day) => {
            let zone = if time_zone.is_empty() {
                "UTC"
            } else {
                time_zone
            };
            let tz = jiff::tz::TimeZone::get(zone).map_err(|_| {
                QueryError::Invalid(ValidationError::new(
                    "time_zone",
                    format!("{zone:?} is not an IANA time zone"),
                ))
            })?;
            Ok(Some(Bucketing::Day(tz)))
        }
        Err(_) => Err(QueryError::Invalid(ValidationError::new(
            "bucket",
            format!("{bucket} is not a known Bucket"),
        ))),
    }
}

/// The figures of each bucket; `series` is none when the window has more
/// than [`MAX_BUCKETS`] buckets with figures.
fn compliance_buckets(
    policy: Option<&Token>,
    series: Option<Vec<(Timestamp, baton_domain::compliance::Tallies)>>,
) -> Result<Vec<v1::Compliance>, QueryError> {
    let Some(series) = series else {
        return Err(QueryError::Invalid(ValidationError::new(
            "bucket",
            format!(
                "this window has more than {MAX_BUCKETS} buckets with figures: narrow from and to, or ask for BUCKET_DAY"
            ),
        )));
    };
    Ok(series
        .into_iter()
        .map(|(start, t)| v1::Compliance {
            bucket_start: Some(timestamp_to_proto(start)),
            ..tallies_to_proto(policy, &t)
        })
        .collect())
}

/// Items a page holds for a requested `page_size` (0: the default).
pub(crate) fn page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE as usize,
        n => n.min(MAX_PAGE) as usize,
    }
}

fn page_token(token: &str) -> Option<&str> {
    (!token.is_empty()).then_some(token)
}

/// A stream of signals as a watch answers them.
pub type SignalStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    async fn get_handoff(
        &self,
        request: Request<v1::GetHandoffRequest>,
    ) -> Result<Response<v1::GetHandoffResponse>, Status> {
        self.ensure_current()?;
        let id = token("handoff_id", &request.into_inner().handoff_id).map_err(QueryError::from)?;
        let wanted = id.clone();
        let stored = self
            .shared
            .read(move |views| Ok((views.handoff(&wanted)?, views.is_retired(&wanted)?)))
            .await
            .map_err(QueryError::from)?;
        let (view, events) = match stored {
            (Some(view), _) => {
                let events = crate::timeline::events(&self.client, &view)
                    .await
                    .map_err(QueryError::from)?;
                (view, events)
            }
            (None, true) => crate::timeline::retired(&self.client, &self.shared.catalog, &id)
                .await
                .map_err(QueryError::from)?,
            (None, false) => {
                return Err(QueryError::NotFound(format!("hand-off {id} is not known")).into())
            }
        };
        Ok(Response::new(v1::GetHandoffResponse {
            handoff: Some(self.handoff_to_proto(view, &events)),
        }))
    }

    async fn list_handoffs(
        &self,
        request: Request<v1::ListHandoffsRequest>,
    ) -> Result<Response<v1::ListHandoffsResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let filter = HandoffFilter {
            supplier: optional_token("supplier", &r.supplier).map_err(QueryError::from)?,
            customer: optional_token("customer", &r.customer).map_err(QueryError::from)?,
            kind: optional_token("kind", &r.kind).map_err(QueryError::from)?,
            status: status_from_proto(r.status).map_err(QueryError::from)?,
        };
        let page = self
            .shared
            .read(move |views| {
                views.list_handoffs(&filter, page_token(&r.page_token), page_size(r.page_size))
            })
            .await
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::ListHandoffsResponse {
            handoffs: page
                .items
                .into_iter()
                .map(|v| self.handoff_to_proto(v, &[]))
                .collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn list_breaches(
        &self,
        request: Request<v1::ListBreachesRequest>,
    ) -> Result<Response<v1::ListBreachesResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let filter = BreachFilter {
            policy: optional_token("policy_id", &r.policy_id).map_err(QueryError::from)?,
            supplier: optional_token("supplier", &r.supplier).map_err(QueryError::from)?,
            customer: optional_token("customer", &r.customer).map_err(QueryError::from)?,
            open_only: r.open_only,
        };
        let page = self
            .shared
            .read(move |views| {
                views.list_breaches(&filter, page_token(&r.page_token), page_size(r.page_size))
            })
            .await
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::ListBreachesResponse {
            breaches: page
                .items
                .iter()
                .map(|b| breach_to_proto(b, baton_runtime::now()))
                .collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_compliance(
        &self,
        request: Request<v1::GetComplianceRequest>,
    ) -> Result<Response<v1::GetComplianceResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let scope = self.compliance_scope(&r)?;
        let bucketing = bucketing(r.bucket, &r.time_zone)?;
        let policy = scope.policy.clone();
        let (tallies, series) = self
            .shared
            .read(move |views| {
                let tallies = views.compliance(&scope)?;
                let series = match bucketing {
                    Some(bucketing) => {
                        Some(views.compliance_series(&scope, &bucketing, MAX_BUCKETS)?)
                    }
                    None => None,
                };
                Ok((tallies, series))
            })
            .await
            .map_err(QueryError::from)?;
        let mut figures = tallies_to_proto(policy.as_ref(), &tallies);
        if let Some(series) = series {
            figures.buckets = compliance_buckets(policy.as_ref(), series)?;
        }
        Ok(Response::new(v1::GetComplianceResponse {
            compliance: Some(figures),
        }))
    }

    async fn list_open_clocks(
        &self,
        request: Request<v1::ListOpenClocksRequest>,
    ) -> Result<Response<v1::ListOpenClocksResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let filter = HandoffFilter {
            supplier: optional_token("supplier", &r.supplier).map_err(QueryError::from)?,
            customer: optional_token("customer", &r.customer).map_err(QueryError::from)?,
            kind: optional_token("kind", &r.kind).map_err(QueryError::from)?,
            status: None,
        };
        let open = self
            .shared
            .read(move |views| views.open_clocks(&filter, page_size(r.limit)))
            .await
            .map_err(QueryError::from)?;
        let clocks = open
            .into_iter()
            .map(|OpenClock { clock, handoff: h }| v1::OpenClock {
                handoff_id: h.handoff_id.to_string(),
                policy_id: clock.policy_id.to_string(),
                supplier: h.supplier.to_string(),
                customer: h.customer.to_string(),
                kind: h.kind.to_string(),
                priority: priority_to_proto(h.priority) as i32,
                deadline: Some(timestamp_to_proto(clock.deadline)),
                warned: clock.warned,
                cycle: clock.cycle,
                started_at: clock.started_at.map(timestamp_to_proto),
            })
            .collect();
        Ok(Response::new(v1::ListOpenClocksResponse { clocks }))
    }

    async fn get_matrix(
        &self,
        request: Request<v1::GetMatrixRequest>,
    ) -> Result<Response<v1::GetMatrixResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let from = optional_time("from", &r.from)?;
        let to = optional_time("to", &r.to)?;
        let matrix = self
            .shared
            .read(move |views| views.matrix(from, to))
            .await
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::GetMatrixResponse {
            cells: matrix
                .iter()
                .map(|((s, c), cell)| cell_to_proto(s, c, cell))
                .collect(),
        }))
    }

    async fn list_disruptions(
        &self,
        request: Request<v1::ListDisruptionsRequest>,
    ) -> Result<Response<v1::ListDisruptionsResponse>, Status> {
        self.ensure_current()?;
        let r = request.into_inner();
        let supplier = optional_token("supplier", &r.supplier).map_err(QueryError::from)?;
        let now = baton_runtime::now();
        let views = self
            .shared
            .read(move |views| views.disruptions(supplier.as_ref(), r.active_only.then_some(now)))
            .await
            .map_err(QueryError::from)?;
        Ok(Response::new(v1::ListDisruptionsResponse {
            disruptions: views.iter().map(|d| disruption_to_proto(d, now)).collect(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::GetStatusResponse>, Status> {
        let position = self
            .shared
            .read(move |views| views.position())
            .await
            .map_err(QueryError::from)?;
        let js = async_nats::jetstream::new(self.client.clone());
        let stream = match baton_log::is_connected(&self.client) {
            true => js.get_stream(self.shared.partition.stream()).await.ok(),
            false => None,
        };
        let stream_last_sequence = match stream {
            Some(mut stream) => stream
                .info()
                .await
                .map(|info| info.state.last_sequence)
                .unwrap_or(0),
            None => 0,
        };
        let not_current_reason = match self.ensure_current() {
            Ok(()) => String::new(),
            Err(why) => why.to_string(),
        };
        Ok(Response::new(v1::GetStatusResponse {
            current: self.shared.is_current(),
            position,
            stream_last_sequence,
            catalog_version: self.shared.catalog.version().to_owned(),
            applied_since_start: self.shared.applied(),
            not_current_reason,
        }))
    }

    type WatchBreachesStream = SignalStream<v1::WatchBreachesResponse>;

    async fn watch_breaches(
        &self,
        request: Request<v1::WatchBreachesRequest>,
    ) -> Result<Response<Self::WatchBreachesStream>, Status> {
        let r = request.into_inner();
        let filters = SignalFilters::parse(&r.policy_id, &r.supplier, &r.customer)?;
        Ok(Response::new(self.watch(move |signal| match signal {
            Relayed::Breach(b) if filters.admit(&b.policy_id, &b.supplier, &b.customer) => {
                Some(v1::WatchBreachesResponse {
                    breach: Some(b.clone()),
                })
            }
            _ => None,
        })))
    }

    type WatchWarningsStream = SignalStream<v1::WatchWarningsResponse>;

    async fn watch_warnings(
        &self,
        request: Request<v1::WatchWarningsRequest>,
    ) -> Result<Response<Self::WatchWarningsStream>, Status> {
        let r = request.into_inner();
        let filters = SignalFilters::parse(&r.policy_id, &r.supplier, &r.customer)?;
        Ok(Response::new(self.watch(move |signal| match signal {
            Relayed::Warning(w) if filters.admit(&w.policy_id, &w.supplier, &w.customer) => {
                Some(v1::WatchWarningsResponse {
                    warning: Some(w.clone()),
                })
            }
            _ => None,
        })))
    }
}
