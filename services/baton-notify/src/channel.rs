//! Where a notice is delivered. A channel is a small trait, so a paging
//! product is one more implementation: deliver the body, say whether it
//! arrived, and tell a failure worth retrying from one that is not.
//! [`Webhook`] posts JSON over HTTP(S), signed with HMAC-SHA-256 over the
//! timestamp and the body, and names the delivery so the receiver can
//! recognise a retry.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ring::hmac;

use crate::routes::Webhook;

/// One delivery: the same id on every attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable across retries: the signal's subject and sequence, the route
    /// and the channel.
    pub id: String,
    pub body: Bytes,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the receiver answered {0}")]
    Status(u16),
    #[error("HTTP: {0}")]
    Http(String),
}

/// Something a notice can be delivered to.
pub trait Channel: Send + Sync {
    /// One attempt; `Ok` when the receiver has it.
    fn deliver(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// The headers a webhook request carries: `X-Baton-Delivery` (the id),
/// `X-Baton-Timestamp` (unix seconds) and `X-Baton-Signature`
/// (`v1=<hex HMAC-SHA-256 of "<timestamp>.<body>">`).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(&key, &signed);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// A webhook, with its TLS set up once.
#[derive(Clone)]
pub struct WebhookChannel {
    hook: Webhook,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    pub fn new(hook: Webhook) -> Result<WebhookChannel, String> {
        let tls = match hook.url.scheme_str() {
            Some("https") => Some(connector(hook.ca_file.as_deref())?),
            _ => None,
        };
        Ok(WebhookChannel { hook, tls })
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        self.hook.timeout
    }

    async fn post(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let url = &self.hook.url;
        let host = url.host().unwrap_or_default().to_owned();
        let port = url
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| DeliveryError::Connect(e.to_string()))?;
        let now = jiff::Timestamp::now().as_second();
        let request = hyper::Request::post(url.clone())
            .header(hyper::header::HOST, host.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("X-Baton-Delivery", delivery.id.as_str())
            .header("X-Baton-Timestamp", now.to_string())
            .header(
                "X-Baton-Signature",
                signature(&self.hook.secret, now, &delivery.body),
            )
            .body(Full::new(delivery.body.clone()))
            .map_err(|e| DeliveryError::Http(e.to_string()))?;
        let status = match &self.tls {
            None => send(tcp, request).await?,
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| DeliveryError::Connect(e.to_string()))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| DeliveryError::Connect(format!("TLS: {e}")))?;
                send(stream, request).await?
            }
        };
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    }
}

impl Channel for WebhookChannel {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let timeout = self.hook.timeout;
        tokio::time::timeout(timeout, self.post(delivery))
            .await
            .map_err(|_| DeliveryError::TimedOut(timeout))?
    }
}

/// Sends `request` on a fresh HTTP/1.1 connection; the answer's status.
async fn send<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<u16, DeliveryError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| DeliveryError::Http(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| DeliveryError::Http(e.to_string()))?;
    let status = answer.status().as_u16();
    // Read the body so the connection ends cleanly; its content is not used.
    let _ = answer.into_body().collect().await;
    driver.abort();
    Ok(status)
}

fn connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    use tokio_rustls::rustls;
    let ca = ca_file.ok_or("an https webhook needs ca_file, the CA that signs its certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HMAC-SHA-256 built from SHA-256 by RFC 2104's construction, not by
    /// the HMAC the channel uses.
    fn rfc2104(key: &[u8], message: &[u8]) -> Vec<u8> {
        use ring::digest::{digest, SHA256};
        let mut block = [0u8; 64];
        block[..key.len()].copy_from_slice(key);
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = digest(&SHA256, &[pad(0x36), message.to_vec()].concat());
        digest(&SHA256, &[pad(0x5c), inner.as_ref().to_vec()].concat())
            .as_ref()
            .to_vec()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let body = br#"{"signal":"breach"}"#;
        let expected: String = rfc2104(
            b"a-shared-secret-key",
            &[b"1796463000.".as_slice(), body].concat(),
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        assert_eq!(
            signature(b"a-shared-secret-key", 1_796_463_000, body),
            format!("v1={expected}")
        );
        // RFC 4231, test case 2, through the same construction.
        let rfc: String = rfc2104(b"Jefe", b"what do ya want for nothing?")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rfc,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
