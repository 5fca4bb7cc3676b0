pub mod append;
pub mod breaches;
pub mod catalog;
pub mod compliance;
pub mod demo;
pub mod engine;
pub mod get;
pub mod import;
pub mod simulate;
pub mod status;
pub mod tail;

use anyhow::Context;
use baton_proto::v1::{ingest_client::IngestClient, query_client::QueryClient};
use tonic::transport::Channel;

async fn channel(url: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a URL"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach {url}; is the service running?"))
}

pub async fn ingest(url: &str) -> anyhow::Result<IngestClient<Channel>> {
    Ok(IngestClient::new(channel(url).await?))
}

pub async fn query(url: &str) -> anyhow::Result<QueryClient<Channel>> {
    Ok(QueryClient::new(channel(url).await?))
}

/// A gRPC status as a one-line error: code and message.
pub fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}
