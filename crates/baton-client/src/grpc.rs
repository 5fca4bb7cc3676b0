//! Connecting to Baton's gRPC services (ingest, query), in plaintext or
//! over TLS, presenting a client certificate where the services ask for
//! one. It only connects: it never retries a call or hides a status.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{v1, ClientError};

/// TLS for the connections: the CA that signed the services' certificates
/// and, for mutual TLS, the caller's own certificate and key.
#[derive(Debug, Clone)]
pub struct Tls(ClientTlsConfig);

impl Tls {
    /// Trusts the CA in `ca` (PEM) and presents `client` (certificate, key;
    /// PEM) if given.
    pub fn from_files(ca: &Path, client: Option<(&Path, &Path)>) -> Result<Tls, ClientError> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let Some((cert, key)) = client {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Tls(tls))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// A connection to the service at `url` (`http://` or, with `tls`, `https://`).
pub async fn channel(url: &str, tls: Option<&Tls>) -> Result<Channel, ClientError> {
    endpoint(url, tls)?
        .connect()
        .await
        .map_err(|source| ClientError::Unreachable {
            url: url.to_owned(),
            source,
        })
}

fn endpoint(url: &str, tls: Option<&Tls>) -> Result<Endpoint, ClientError> {
    let endpoint =
        Channel::from_shared(url.to_owned()).map_err(|source| ClientError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    Ok(match tls {
        Some(Tls(tls)) => endpoint.tls_config(tls.clone())?,
        None => endpoint,
    })
}

/// The ingest service's client (Append, AppendBatch, AppendDisruption).
pub async fn ingest(
    url: &str,
    tls: Option<&Tls>,
) -> Result<v1::ingest_client::IngestClient<Channel>, ClientError> {
    Ok(v1::ingest_client::IngestClient::new(
        channel(url, tls).await?,
    ))
}

/// The ingest service's client, connecting on its first call and again
/// whenever the connection is lost: for a service that must start, and
/// keep running, while ingest is away.
pub fn ingest_lazy(
    url: &str,
    tls: Option<&Tls>,
) -> Result<v1::ingest_client::IngestClient<Channel>, ClientError> {
    Ok(v1::ingest_client::IngestClient::new(
        endpoint(url, tls)?.connect_lazy(),
    ))
}

/// The projector's query client, connecting on its first call (see
/// [`ingest_lazy`]).
pub fn query_lazy(
    url: &str,
    tls: Option<&Tls>,
) -> Result<v1::query_client::QueryClient<Channel>, ClientError> {
    Ok(v1::query_client::QueryClient::new(
        endpoint(url, tls)?.connect_lazy(),
    ))
}

/// The projector's query client (hand-offs, breaches, compliance, matrix...).
pub async fn query(
    url: &str,
    tls: Option<&Tls>,
) -> Result<v1::query_client::QueryClient<Channel>, ClientError> {
    Ok(v1::query_client::QueryClient::new(channel(url, tls).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_url_an_absent_file_and_no_service_are_named() {
        let error = channel("not a url", None).await.expect_err("not a URL");
        assert!(
            error.to_string().starts_with("\"not a url\" is not a URL"),
            "{error}"
        );
        let error = Tls::from_files(Path::new("/nonexistent/ca.pem"), None).expect_err("no file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        // A port nothing listens on: bind one, then let it go.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let error = channel(&format!("http://{address}"), None)
            .await
            .expect_err("nothing listens");
        assert!(
            error.to_string().contains("is the service running?"),
            "{error}"
        );
    }
}
