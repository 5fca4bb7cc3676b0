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
pub mod token;

use std::{path::Path, sync::OnceLock};

use anyhow::Context;
use baton_proto::v1::{ingest_client::IngestClient, query_client::QueryClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// TLS for every gRPC connection, when `--tls-ca` is given.
static TLS: OnceLock<ClientTlsConfig> = OnceLock::new();

/// Connects over TLS from now on, trusting `ca` and presenting `client`
/// (certificate, key) if given.
pub fn use_tls(ca: &Path, client: Option<(&Path, &Path)>) -> anyhow::Result<()> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    let _ = TLS.set(tls);
    Ok(())
}

async fn channel(url: &str) -> anyhow::Result<Channel> {
    let mut endpoint =
        Channel::from_shared(url.to_owned()).with_context(|| format!("{url:?} is not a URL"))?;
    if let Some(tls) = TLS.get() {
        endpoint = endpoint
            .tls_config(tls.clone())
            .context("TLS configuration")?;
    }
    endpoint
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
