//! Plain HTTP/1.1 against the services' side ports, as a scraper, a load
//! balancer's probe or a wall screen's browser would speak it: one request
//! per connection, and server-sent events read line by line.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// An answer: the status code, the head (status line and headers) and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` with the extra header lines `headers` (each `Name: value`).
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the side port");
    exchange(stream, "GET", path, headers, "")
        .await
        .expect("an answer")
}

/// One request on `stream` (`Connection: close`), and its answer; an error
/// if the connection ends before a status line.
pub async fn exchange<S>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    // A TLS peer may end without close_notify: what was read still counts.
    let read = stream.read_to_end(&mut response).await;
    if response.is_empty() {
        return Err(format!("no answer: {read:?}"));
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Answer {
        status,
        head: head.to_owned(),
        body,
    })
}

impl Answer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// HTTPS to the side port: trusting a CA, presenting a client certificate
/// or none.
#[derive(Clone)]
pub struct Https {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Https")
    }
}

impl Https {
    /// Trusting the PEM CA `ca`; presenting the PEM `client` (certificate,
    /// key) when given.
    pub fn new(
        ca: &std::path::Path,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Https {
        use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
            roots
                .add(cert.expect("a CA certificate"))
                .expect("add the CA");
        }
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .expect("read the certificate")
                        .collect::<Result<Vec<_>, _>>()
                        .expect("certificates"),
                    PrivateKeyDer::from_pem_file(key).expect("the key"),
                )
                .expect("client certificate"),
            None => builder.with_no_client_auth(),
        };
        Https {
            connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        }
    }

    /// A TLS connection to `addr` (as `localhost`), handshake done.
    pub async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("a name");
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))
    }

    /// One request over TLS to `addr` (as `localhost`); an error if the
    /// handshake or the exchange fails.
    pub async fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> Result<Answer, String> {
        let tls = self.connect(addr).await?;
        exchange(tls, method, path, headers, body).await
    }

    pub async fn get(&self, addr: SocketAddr, path: &str, headers: &[&str]) -> Answer {
        self.request(addr, "GET", path, headers, "")
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    get_with(addr, path, &[]).await
}

/// The value of the unlabelled series `name` in the service's `/metrics`,
/// or `None` if it has no such sample.
pub async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let answer = get(addr, "/metrics").await;
    assert_eq!(answer.status, 200, "/metrics: {}", answer.head);
    sample(&answer.body, name)
}

/// The value of the unlabelled series `name` in an exposition text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.split_once(' ')?;
        if series == name {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// The body of a chunked response, joined.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest.get(size + 2..).unwrap_or("");
    }
    out
}

/// One server-sent event: its name and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub event: String,
    pub data: String,
}

/// An open `/events` stream.
#[derive(Debug)]
pub struct EventStream {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

impl EventStream {
    /// Opens `path` (normally `/events`) and reads past the response head.
    pub async fn open(addr: SocketAddr, path: &str) -> EventStream {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the side port");
        // HTTP/1.0: the body is the rest of the connection, with no chunk
        // framing between the events.
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: baton\r\nAccept: text/event-stream\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut lines = BufReader::new(stream).lines();
        // The head ends with an empty line.
        while let Some(line) = lines.next_line().await.expect("read the head") {
            if line.is_empty() {
                break;
            }
        }
        EventStream { lines }
    }

    /// The next named event, skipping comments;
    /// `None` if the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<ServerEvent> {
        let read = async {
            let mut event = None;
            let mut data = String::new();
            while let Ok(Some(line)) = self.lines.next_line().await {
                if let Some(name) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                    event = Some(name.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    data.push_str(d.trim_start());
                } else if line.is_empty() {
                    if let Some(event) = event.take() {
                        return Some(ServerEvent {
                            event,
                            data: std::mem::take(&mut data),
                        });
                    }
                }
            }
            None
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }

    /// The next event called `name`, skipping others.
    pub async fn next_named(&mut self, name: &str, wait: Duration) -> Option<ServerEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            if event.event == name {
                return Some(event);
            }
        }
    }
}
