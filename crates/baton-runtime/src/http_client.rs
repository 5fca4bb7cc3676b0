//! One HTTP/1.1 request on a fresh connection, over TLS to an `https://`
//! URL with a CA the operator names: what notify's webhooks and the
//! gateway's FHIR fetches need, and nothing more (no pool, no redirects, no
//! proxy, no system roots: a hospital's servers are signed by its own CA).

use std::{path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// Why a client cannot be made for a URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("an https URL needs the CA that signs its server's certificate")]
    NoCa,
    #[error("{path}: {message}")]
    Ca { path: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// Sends requests to one server; TLS set up once.
#[derive(Clone)]
pub struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Client {
    /// A client for `url`'s server: TLS, trusting only `ca_file`, when
    /// the scheme is `https`.
    pub fn for_url(url: &http::Uri, ca_file: Option<&Path>) -> Result<Client, ClientError> {
        let tls = match url.scheme_str() {
            Some("https") => Some(connector(ca_file.ok_or(ClientError::NoCa)?)?),
            _ => None,
        };
        Ok(Client { tls })
    }

    /// Sends `request` (its URI absolute) and reads at most `max_body`
    /// bytes of the answer, all within `timeout`.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        max_body: usize,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, RequestError> {
        tokio::time::timeout(timeout, self.exchange(request, max_body))
            .await
            .map_err(|_| RequestError::TimedOut(timeout))?
    }

    async fn exchange(
        &self,
        mut request: http::Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<http::Response<Bytes>, RequestError> {
        let uri = request.uri().clone();
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        if !request.headers().contains_key(http::header::HOST) {
            let value = http::HeaderValue::from_str(&host)
                .map_err(|e| RequestError::Http(e.to_string()))?;
            request.headers_mut().insert(http::header::HOST, value);
        }
        // On a direct connection the request line carries the path only
        // (origin form); the absolute form is for proxies.
        let origin = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| RequestError::Http(e.to_string()))?;
        *request.uri_mut() = origin;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| RequestError::Connect(e.to_string()))?;
        match &self.tls {
            None => exchange_on(tcp, request, max_body).await,
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(host)
                    .map_err(|e| RequestError::Connect(e.to_string()))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| RequestError::Connect(format!("TLS: {e}")))?;
                exchange_on(stream, request, max_body).await
            }
        }
    }
}

async fn exchange_on<S>(
    stream: S,
    request: http::Request<Full<Bytes>>,
    max_body: usize,
) -> Result<http::Response<Bytes>, RequestError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| RequestError::Http(e.to_string()))?;
    // Drives the connection; it ends when the answer is read and the
    // sender dropped, and is aborted if this future is dropped first.
    let driver = AbortOnDrop(tokio::spawn(connection));
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| RequestError::Http(e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                RequestError::TooLarge(max_body)
            } else {
                RequestError::Http(e.to_string())
            }
        })?
        .to_bytes();
    drop(driver);
    Ok(http::Response::from_parts(parts, body))
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, ClientError> {
    crate::tls_client::connector(ca).map_err(|e| match e {
        crate::tls_client::TlsClientError::Ca { path, message } => {
            ClientError::Ca { path, message }
        }
        crate::tls_client::TlsClientError::Tls(why) => ClientError::Tls(why),
    })
}
