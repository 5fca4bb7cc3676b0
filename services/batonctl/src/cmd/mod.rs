pub mod ack;
pub mod append;
pub mod breaches;
pub mod catalog;
pub mod clocks;
pub mod compliance;
pub mod demo;
pub mod disruption;
pub mod get;
pub mod hl7;
pub mod import;
pub mod matrix;
pub mod notify;
pub mod rate;
pub mod report;
pub mod simulate;
pub mod status;
pub mod tail;
pub mod token;

use std::{path::Path, sync::OnceLock};

use baton_client::grpc::Tls;
use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient};
use tonic::transport::Channel;

use crate::output;

/// TLS for every gRPC connection, when `--tls-ca` is given.
static TLS: OnceLock<Tls> = OnceLock::new();

/// Connects over TLS from now on, trusting `ca` and presenting `client`
/// (certificate, key) if given.
pub fn use_tls(ca: &Path, client: Option<(&Path, &Path)>) -> anyhow::Result<()> {
    let _ = TLS.set(Tls::from_files(ca, client)?);
    Ok(())
}

pub async fn ingest(url: &str) -> anyhow::Result<IngestClient<Channel>> {
    Ok(baton_client::grpc::ingest(url, TLS.get()).await?)
}

/// Appends one live event through ingest at `url`.
pub async fn append_one(
    url: &str,
    event: baton_proto::v1::HandoffEvent,
) -> anyhow::Result<baton_proto::v1::AppendResponse> {
    let mut client = ingest(url).await?;
    let request = baton_proto::v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill: false,
    };
    Ok(client.append(request).await.map_err(status)?.into_inner())
}

pub async fn query(url: &str) -> anyhow::Result<QueryClient<Channel>> {
    Ok(baton_client::grpc::query(url, TLS.get()).await?)
}

/// The message a response wraps, or an error naming the RPC whose answer
/// came without it.
pub fn required<T>(field: Option<T>, rpc: &str) -> anyhow::Result<T> {
    field.ok_or_else(|| anyhow::anyhow!("{rpc} answered without its result"))
}

/// A gRPC status as a one-line error: code and message.
pub fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// Prints each breach the stream announces, as it comes, until the stream
/// ends: the running commands (demo, simulate) show breaches beside their
/// own output.
pub fn print_breaches(mut breaches: tonic::Streaming<v1::WatchBreachesResponse>) {
    tokio::spawn(async move {
        while let Ok(Some(response)) = breaches.message().await {
            if let Some(b) = response.breach {
                println!("{}", output::breach_line(&b));
            }
        }
    });
}

/// A hand-off event's id: the hand-off's and the event type's, so sending
/// the same event twice is a duplicate, not a second event.
pub fn event_id(handoff_id: &str, event_type: v1::EventType) -> String {
    format!("{handoff_id}-{}", output::event_type(event_type as i32))
}
