//! Which views answer a query: this projector's own, or, when projectors
//! share the work and the caller asked the group, every partition's,
//! merged by [`crate::fanout`]. Watches likewise: each projector relays
//! the signals of its own views, so a watch of the group is every
//! partition's watch, merged.

use baton_proto::v1::{self, query_server::Query};
use tonic::{Request, Response, Status};

use crate::{fanout::Fanout, query::QueryService};

/// The `baton.v1.Query` service as served.
#[derive(Debug, Clone)]
pub struct QueryRouter {
    local: QueryService,
    /// Set with `--query-partitions`.
    partitions: Option<Fanout>,
}

impl QueryRouter {
    pub fn new(local: QueryService, partitions: Option<Fanout>) -> QueryRouter {
        QueryRouter { local, partitions }
    }

    /// The fan-out, unless the request is a partition's share of one.
    fn fanout<T>(&self, request: &Request<T>) -> Option<&Fanout> {
        self.partitions
            .as_ref()
            .filter(|_| !crate::fanout::is_partition_scoped(request))
    }
}

/// The service: each query, watches included, merged across partitions or
/// answered locally. (One macro writes the whole impl, as
/// `async_trait` must see the methods it rewrites.)
macro_rules! router {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl Query for QueryRouter {
            $(
                async fn $method(&self, request: Request<$request>) -> Result<Response<$response>, Status> {
                    match self.fanout(&request) {
                        Some(fanout) => fanout.$method(request.into_inner()).await.map(Response::new),
                        None => self.local.$method(request).await,
                    }
                }
            )*

            type WatchBreachesStream = <QueryService as Query>::WatchBreachesStream;

            async fn watch_breaches(
                &self,
                request: Request<v1::WatchBreachesRequest>,
            ) -> Result<Response<Self::WatchBreachesStream>, Status> {
                match self.fanout(&request) {
                    Some(fanout) => fanout
                        .watch(request.get_ref(), |mut c, r| async move { c.watch_breaches(r).await })
                        .await
                        .map(Response::new),
                    None => self.local.watch_breaches(request).await,
                }
            }

            type WatchWarningsStream = <QueryService as Query>::WatchWarningsStream;

            async fn watch_warnings(
                &self,
                request: Request<v1::WatchWarningsRequest>,
            ) -> Result<Response<Self::WatchWarningsStream>, Status> {
                match self.fanout(&request) {
                    Some(fanout) => fanout
                        .watch(request.get_ref(), |mut c, r| async move { c.watch_warnings(r).await })
                        .await
                        .map(Response::new),
                    None => self.local.watch_warnings(request).await,
                }
            }
        }
    };
}

router! {
    get_handoff(v1::GetHandoffRequest) -> v1::GetHandoffResponse;
    list_handoffs(v1::ListHandoffsRequest) -> v1::ListHandoffsResponse;
    list_breaches(v1::ListBreachesRequest) -> v1::ListBreachesResponse;
    get_compliance(v1::GetComplianceRequest) -> v1::GetComplianceResponse;
    list_open_clocks(v1::ListOpenClocksRequest) -> v1::ListOpenClocksResponse;
    get_matrix(v1::GetMatrixRequest) -> v1::GetMatrixResponse;
    list_disruptions(v1::ListDisruptionsRequest) -> v1::ListDisruptionsResponse;
    get_status(v1::GetStatusRequest) -> v1::GetStatusResponse;
}
