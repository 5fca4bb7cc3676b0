//! Queries answered across partitions.
//!
//! When projectors share the work (`--partitions`), each holds the
//! hand-offs of one partition and every disruption. A query then goes to
//! every partition's projector, marked with [`SCOPE_HEADER`] so each answers
//! from its own views only, and the answers are merged here:
//! - figures add up exactly: counts, and the stopped clocks' durations as
//!   histogram buckets, from which the percentiles are read again;
//! - lists are merged in the order one projector would list them, and a
//!   page token (the last key listed) means the same to every partition;
//! - a hand-off lives in one partition: the one that knows it answers.
//!
//! The merged answer is the answer one projector over the whole stream
//! would give (the partitions test checks that, field by field). A
//! partition that cannot answer fails the query (UNAVAILABLE, naming it):
//! a figure missing a partition would be wrong without saying so.
//!
//! This module must never answer from local views itself, nor guess an
//! answer for a partition that is down.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use baton_proto::v1::{self, query_client::QueryClient};
use baton_views::{MatrixCell, PairTallies};
use futures::{future::join_all, StreamExt};
use tonic::{
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
    Code, Request, Status,
};

use crate::present::{cell_to_proto, tallies_from_proto, tallies_to_proto, BadFigures};

/// Metadata key marking a query one partition answers alone.
pub const SCOPE_HEADER: &str = "baton-scope";
/// Its one value.
pub const SCOPE_PARTITION: &str = "partition";

/// Whether `request` asks for this partition's views only.
pub fn is_partition_scoped<T>(request: &Request<T>) -> bool {
    request
        .metadata()
        .get(SCOPE_HEADER)
        .is_some_and(|v| v == SCOPE_PARTITION)
}

/// How this projector reaches the other partitions' projectors over TLS.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FanoutTlsArgs {
    /// CA certificate (PEM) the partitions' server certificates are checked
    /// against: with it, partitions are asked over TLS (https:// URLs).
    #[arg(long, env = "BATON_QUERY_PARTITIONS_CA")]
    pub query_partitions_ca: Option<PathBuf>,

    /// Client certificate (PEM) this projector presents to the partitions
    /// (mutual TLS): register its identity in their --callers as an operator.
    #[arg(
        long,
        env = "BATON_QUERY_PARTITIONS_CERT",
        requires_all = ["query_partitions_key", "query_partitions_ca"]
    )]
    pub query_partitions_cert: Option<PathBuf>,

    /// Private key (PEM) of --query-partitions-cert.
    #[arg(
        long,
        env = "BATON_QUERY_PARTITIONS_KEY",
        requires = "query_partitions_cert"
    )]
    pub query_partitions_key: Option<PathBuf>,
}

impl FanoutTlsArgs {
    /// The client TLS configuration, if TLS is asked for.
    fn client_tls(&self) -> Result<Option<ClientTlsConfig>, FanoutError> {
        let Some(ca) = &self.query_partitions_ca else {
            return Ok(None);
        };
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.query_partitions_cert, &self.query_partitions_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, FanoutError> {
    std::fs::read(path).map_err(|source| FanoutError::Read {
        path: path.clone(),
        source,
    })
}

/// Why the fan-out could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("--query-partitions: {url:?} is not a gRPC URL: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The projectors of every partition, asked together.
#[derive(Debug, Clone)]
pub struct Fanout {
    partitions: Vec<(String, QueryClient<Channel>)>,
}

impl Fanout {
    /// Clients for `urls` (connected on first use, reconnecting as needed),
    /// over TLS if `tls` says so.
    pub fn new(
        urls: &[String],
        timeout: Duration,
        tls: &FanoutTlsArgs,
    ) -> Result<Fanout, FanoutError> {
        let tls = tls.client_tls()?;
        let mut partitions = Vec::with_capacity(urls.len());
        for url in urls {
            let bad = |source| FanoutError::BadUrl {
                url: url.clone(),
                source,
            };
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(bad)?
                .connect_timeout(timeout)
                .timeout(timeout);
            if let Some(tls) = &tls {
                endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
            }
            partitions.push((url.clone(), QueryClient::new(endpoint.connect_lazy())));
        }
        Ok(Fanout { partitions })
    }

    /// Every partition's answer to `request`, in `--query-partitions` order.
    async fn ask<Req, Resp, Fut>(
        &self,
        request: &Req,
        call: impl Fn(QueryClient<Channel>, Request<Req>) -> Fut,
    ) -> Vec<(&str, Result<Resp, Status>)>
    where
        Req: Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let calls = self.partitions.iter().map(|(url, client)| {
            let mut scoped = Request::new(request.clone());
            scoped
                .metadata_mut()
                .insert(SCOPE_HEADER, MetadataValue::from_static(SCOPE_PARTITION));
            let answer = call(client.clone(), scoped);
            async move { (url.as_str(), answer.await.map(tonic::Response::into_inner)) }
        });
        join_all(calls).await
    }

    /// Every partition's watch of `request`, merged as signals arrive. The
    /// watch opens only if every partition's does, and ends (UNAVAILABLE,
    /// naming the partition) when any partition's ends: a watch that
    /// silently lost a partition would hide its breaches.
    pub async fn watch<Req, T, Fut>(
        &self,
        request: &Req,
        call: impl Fn(QueryClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<crate::query::SignalStream<T>, Status>
    where
        Req: Clone,
        T: Send + 'static,
        Fut: std::future::Future<
            Output = Result<tonic::Response<tonic::codec::Streaming<T>>, Status>,
        >,
    {
        let mut streams = Vec::with_capacity(self.partitions.len());
        for (url, answer) in self.ask(request, call).await {
            let url = url.to_owned();
            let stream = answer.map_err(|status| from_partition(&url, status))?;
            let ended = {
                let url = url.clone();
                futures::stream::once(async move {
                    Err(Status::unavailable(format!(
                        "partition {url}: its watch ended; open the watch again"
                    )))
                })
            };
            let stream = stream
                .map(move |item| item.map_err(|status| from_partition(&url, status)))
                .chain(ended);
            streams.push(stream.boxed());
        }
        // The first error (a partition's watch failing or ending) ends it all.
        let merged = futures::stream::select_all(streams).scan(false, |done, item| {
            if *done {
                return std::future::ready(None);
            }
            *done = item.is_err();
            std::future::ready(Some(item))
        });
        Ok(Box::pin(merged))
    }

    /// Every partition's answer, or the first failure (naming the partition).
    async fn ask_all<Req, Resp, Fut>(
        &self,
        request: &Req,
        call: impl Fn(QueryClient<Channel>, Request<Req>) -> Fut,
    ) -> Result<Vec<Resp>, Status>
    where
        Req: Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        self.ask(request, call)
            .await
            .into_iter()
            .map(|(url, answer)| answer.map_err(|status| from_partition(url, status)))
            .collect()
    }

    pub async fn get_handoff(
        &self,
        request: v1::GetHandoffRequest,
    ) -> Result<v1::GetHandoffResponse, Status> {
        let answers = self
            .ask(&request, |mut c, r| async move { c.get_handoff(r).await })
            .await;
        let mut failure = None;
        for (url, answer) in answers {
            match answer {
                Ok(handoff) => return Ok(handoff),
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => failure = failure.or(Some(from_partition(url, status))),
            }
        }
        Err(failure.unwrap_or_else(|| {
            Status::not_found(format!("hand-off {} is not known", request.handoff_id))
        }))
    }

    pub async fn list_handoffs(
        &self,
        request: v1::ListHandoffsRequest,
    ) -> Result<v1::ListHandoffsResponse, Status> {
        let limit = crate::query::page_size(request.page_size);
        let pages = self
            .ask_all(&request, |mut c, r| async move { c.list_handoffs(r).await })
            .await?
            .into_iter()
            .map(|p| (p.handoffs, p.next_page_token))
            .collect();
        let (handoffs, next_page_token) =
            merge_pages(pages, limit, |h: &v1::Handoff| h.handoff_id.clone());
        Ok(v1::ListHandoffsResponse {
            handoffs,
            next_page_token,
        })
    }

    pub async fn list_breaches(
        &self,
        request: v1::ListBreachesRequest,
    ) -> Result<v1::ListBreachesResponse, Status> {
        let limit = crate::query::page_size(request.page_size);
        let by_policy = request.policy_id.is_empty();
        let pages = self
            .ask_all(&request, |mut c, r| async move { c.list_breaches(r).await })
            .await?
            .into_iter()
            .map(|p| (p.breaches, p.next_page_token))
            .collect();
        // The page token is the breach's key after the listed prefix.
        let (breaches, next_page_token) = merge_pages(pages, limit, |b: &v1::Breach| {
            if by_policy {
                format!("{}/{}/{}", b.policy_id, b.handoff_id, b.cycle)
            } else {
                format!("{}/{}", b.handoff_id, b.cycle)
            }
        });
        Ok(v1::ListBreachesResponse {
            breaches,
            next_page_token,
        })
    }

    pub async fn get_compliance(
        &self,
        request: v1::GetComplianceRequest,
    ) -> Result<v1::GetComplianceResponse, Status> {
        let answers = self
            .ask_all(
                &request,
                |mut c, r| async move { c.get_compliance(r).await },
            )
            .await?
            .into_iter()
            .map(|answer| {
                answer.compliance.ok_or_else(|| {
                    Status::internal("a partition answered GetCompliance without figures")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v1::GetComplianceResponse {
            compliance: Some(merge_compliance(&answers)?),
        })
    }

    pub async fn list_open_clocks(
        &self,
        request: v1::ListOpenClocksRequest,
    ) -> Result<v1::ListOpenClocksResponse, Status> {
        let limit = crate::query::page_size(request.limit);
        let mut clocks: Vec<v1::OpenClock> = self
            .ask_all(
                &request,
                |mut c, r| async move { c.list_open_clocks(r).await },
            )
            .await?
            .into_iter()
            .flat_map(|r| r.clocks)
            .collect();
        // One projector lists them in its index's key order: deadline, then
        // `<handoff>/<policy>` as bytes.
        clocks.sort_by_cached_key(|c| {
            (
                c.deadline.map(|d| (d.seconds, d.nanos)),
                format!("{}/{}", c.handoff_id, c.policy_id),
            )
        });
        clocks.truncate(limit);
        Ok(v1::ListOpenClocksResponse { clocks })
    }

    pub async fn get_matrix(
        &self,
        request: v1::GetMatrixRequest,
    ) -> Result<v1::GetMatrixResponse, Status> {
        let matrices = self
            .ask_all(&request, |mut c, r| async move { c.get_matrix(r).await })
            .await?;
        Ok(merge_matrices(matrices))
    }

    pub async fn list_disruptions(
        &self,
        request: v1::ListDisruptionsRequest,
    ) -> Result<v1::ListDisruptionsResponse, Status> {
        let answers = self
            .ask_all(
                &request,
                |mut c, r| async move { c.list_disruptions(r).await },
            )
            .await?;
        // Every partition knows every disruption; the hand-offs it touched
        // are spread over them.
        let mut merged: Vec<v1::Disruption> = Vec::new();
        for d in answers.into_iter().flat_map(|a| a.disruptions) {
            match merged
                .iter_mut()
                .find(|m| m.supplier == d.supplier && m.disruption_id == d.disruption_id)
            {
                Some(m) => {
                    m.affected += d.affected;
                    m.failed_before_announcement += d.failed_before_announcement;
                }
                None => merged.push(d),
            }
        }
        Ok(v1::ListDisruptionsResponse {
            disruptions: merged,
        })
    }

    /// Current only when every partition is; positions and stream ends add
    /// up, so `position == stream_last_sequence` still means caught up.
    pub async fn get_status(
        &self,
        request: v1::GetStatusRequest,
    ) -> Result<v1::GetStatusResponse, Status> {
        let answers = self
            .ask_all(&request, |mut c, r| async move { c.get_status(r).await })
            .await?;
        let mut versions: Vec<String> = answers.iter().map(|s| s.catalog_version.clone()).collect();
        versions.sort();
        versions.dedup();
        Ok(v1::GetStatusResponse {
            current: answers.iter().all(|s| s.current),
            position: answers.iter().map(|s| s.position).sum(),
            stream_last_sequence: answers.iter().map(|s| s.stream_last_sequence).sum(),
            // Partitions on different catalogs disagree on every figure: say so.
            catalog_version: versions.join(","),
            applied_since_start: answers.iter().map(|s| s.applied_since_start).sum(),
            // Each partition that is not current says why, once.
            not_current_reason: answers
                .iter()
                .map(|s| s.not_current_reason.as_str())
                .filter(|r| !r.is_empty())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

/// A partition's failure as the caller sees it: what is wrong with the
/// request is said as the partition said it; anything else names the partition.
fn from_partition(url: &str, status: Status) -> Status {
    match status.code() {
        Code::InvalidArgument | Code::NotFound | Code::Unauthenticated | Code::PermissionDenied => {
            status
        }
        code => Status::new(code, format!("partition at {url}: {}", status.message())),
    }
}

/// Merges pages listed in key order by several partitions into one page of
/// at most `limit`, with the token to continue from. Each partition went
/// on from the same token, so everything up to the last item kept has been
/// seen; a next page exists if something was cut or a partition has more.
fn merge_pages<T>(
    pages: Vec<(Vec<T>, String)>,
    limit: usize,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let more = pages.iter().any(|(_, next)| !next.is_empty());
    let mut items: Vec<(String, T)> = pages
        .into_iter()
        .flat_map(|(items, _)| items)
        .map(|item| (key(&item), item))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let cut = items.len() > limit;
    items.truncate(limit);
    let next = match items.last() {
        Some((last, _)) if cut || more => last.clone(),
        _ => String::new(),
    };
    (items.into_iter().map(|(_, item)| item).collect(), next)
}

/// Adds up compliance figures of several partitions, bucket series included.
fn merge_compliance(answers: &[v1::Compliance]) -> Result<v1::Compliance, Status> {
    let bad = |e: BadFigures| {
        Status::internal(format!("a partition sent figures that do not add up: {e}"))
    };
    let mut total = baton_domain::compliance::Tallies::default();
    let mut series: BTreeMap<(i64, i32), baton_domain::compliance::Tallies> = BTreeMap::new();
    for answer in answers {
        total.merge(&tallies_from_proto(answer).map_err(bad)?);
        for bucket in &answer.buckets {
            let start = bucket
                .bucket_start
                .map(|t| (t.seconds, t.nanos))
                .ok_or_else(|| bad(BadFigures::BucketWithoutStart))?;
            series
                .entry(start)
                .or_default()
                .merge(&tallies_from_proto(bucket).map_err(bad)?);
        }
    }
    let policy = answers
        .first()
        .map(|a| a.policy_id.clone())
        .unwrap_or_default();
    let figures = |tallies: &baton_domain::compliance::Tallies| v1::Compliance {
        policy_id: policy.clone(),
        ..tallies_to_proto(None, tallies)
    };
    Ok(v1::Compliance {
        buckets: series
            .iter()
            .map(|((seconds, nanos), tallies)| v1::Compliance {
                bucket_start: Some(prost_types::Timestamp {
                    seconds: *seconds,
                    nanos: *nanos,
                }),
                ..figures(tallies)
            })
            .collect(),
        ..figures(&total)
    })
}

/// Adds up the supplier x customer cells of several partitions.
fn merge_matrices(matrices: Vec<v1::GetMatrixResponse>) -> v1::GetMatrixResponse {
    let mut cells: BTreeMap<(String, String), MatrixCell> = BTreeMap::new();
    for cell in matrices.into_iter().flat_map(|m| m.cells) {
        let merged = cells
            .entry((cell.supplier.clone(), cell.customer.clone()))
            .or_insert_with(|| MatrixCell {
                clocks: Default::default(),
                handoffs: PairTallies::default(),
            });
        merged.clocks.met += cell.met;
        merged.clocks.breached += cell.breached;
        merged.clocks.open += cell.open;
        merged.handoffs.handoffs += cell.handoffs;
        merged.handoffs.rejected += cell.rejected;
        merged.handoffs.disrupted += cell.disrupted;
        merged.handoffs.ratings += cell.ratings;
        merged.handoffs.rating_sum += cell.rating_sum;
        merged.handoffs.late_entry_corrections += cell.late_entry_corrections;
    }
    v1::GetMatrixResponse {
        cells: cells
            .iter()
            .map(|((s, c), cell)| cell_to_proto(s, c, cell))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[&str], next: &str) -> (Vec<String>, String) {
        (
            ids.iter().map(|s| (*s).to_owned()).collect(),
            next.to_owned(),
        )
    }

    #[test]
    fn pages_merge_in_key_order_and_continue_where_they_stopped() {
        // Partition a has more after a3; b is done.
        let (items, next) = merge_pages(
            vec![page(&["a1", "a2", "a3"], "a3"), page(&["a0", "b9"], "")],
            3,
            Clone::clone,
        );
        assert_eq!(items, ["a0", "a1", "a2"]);
        assert_eq!(next, "a2");
        // Nothing cut and nobody has more: the last page.
        let (items, next) = merge_pages(vec![page(&["x"], ""), page(&["w"], "")], 3, Clone::clone);
        assert_eq!(items, ["w", "x"]);
        assert_eq!(next, "");
        // A full page from one partition: more may follow even if none was cut.
        let (_, next) = merge_pages(vec![page(&["a", "b"], "b"), page(&[], "")], 2, Clone::clone);
        assert_eq!(next, "b");
    }

    #[test]
    fn paging_through_partitions_lists_everything_once() {
        // Three partitions' keys, paged two at a time through the merge,
        // each partition answering "after the token" like the views do.
        let parts: Vec<Vec<String>> = vec![
            vec!["b", "e", "f", "k"],
            vec!["a", "c", "g"],
            vec!["d", "h", "i", "j"],
        ]
        .into_iter()
        .map(|p| p.into_iter().map(str::to_owned).collect())
        .collect();
        let limit = 2;
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let pages = parts
                .iter()
                .map(|keys| {
                    let after: Vec<String> = keys
                        .iter()
                        .filter(|k| token.is_empty() || k.as_str() > token.as_str())
                        .cloned()
                        .collect();
                    let more = after.len() > limit;
                    let items: Vec<String> = after.into_iter().take(limit).collect();
                    let next = if more {
                        items.last().cloned().unwrap_or_default()
                    } else {
                        String::new()
                    };
                    (items, next)
                })
                .collect();
            let (items, next) = merge_pages(pages, limit, Clone::clone);
            seen.extend(items);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        let mut all: Vec<String> = parts.concat();
        all.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn compliance_adds_up_exactly() {
        use baton_domain::compliance::Tallies;
        let mut a = Tallies {
            met: 3,
            breached: 1,
            open: 2,
            ..Tallies::default()
        };
        let mut b = Tallies {
            met: 1,
            breached: 3,
            cancelled: 1,
            ..Tallies::default()
        };
        for ms in [10, 20, 30, 4_000] {
            a.durations.add(Duration::from_millis(ms));
        }
        for ms in [50, 60_000, 70_000, 80_000] {
            b.durations.add(Duration::from_millis(ms));
        }
        let mut whole = a.clone();
        whole.merge(&b);
        let merged = merge_compliance(&[tallies_to_proto(None, &a), tallies_to_proto(None, &b)])
            .expect("merged");
        assert_eq!(merged, tallies_to_proto(None, &whole));
        assert_eq!(merged.met, 4);
        assert_eq!(merged.compliance, 0.5);
    }

    #[test]
    fn figures_without_durations_are_refused() {
        let figures = v1::Compliance {
            met: 1,
            ..Default::default()
        };
        assert!(merge_compliance(&[figures]).is_err());
    }
}
