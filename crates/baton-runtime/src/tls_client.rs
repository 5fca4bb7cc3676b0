//! A TLS client configuration that trusts only the CA an operator names:
//! a hospital's servers are signed by its own CA, so there are no system
//! roots. Shared by [`crate::http_client`] (webhooks, FHIR fetches) and
//! notify's SMTP relay (STARTTLS). rustls with ring, TLS 1.2 and 1.3.

use std::{path::Path, sync::Arc};

pub use tokio_rustls::{client::TlsStream, TlsConnector};

/// Why a TLS client cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("{path}: {message}")]
    Ca { path: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// A connector that trusts the certificates in the PEM file `ca` and
/// nothing else, and presents no client certificate.
pub fn connector(ca: &Path) -> Result<TlsConnector, TlsClientError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    use tokio_rustls::rustls;
    let failed = |message: String| TlsClientError::Ca {
        path: ca.display().to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| failed(e.to_string()))? {
        let cert = cert.map_err(|e| failed(e.to_string()))?;
        roots.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed("no certificate in the file".to_owned()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsClientError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name a server's certificate must carry: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, TlsClientError> {
    rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| TlsClientError::Tls(format!("{host:?} is not a server name: {e}")))
}
