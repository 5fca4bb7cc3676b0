//! The services with TLS and caller authentication on: a throw-away PKI made
//! with the `openssl` command in a temporary directory (a CA, a server
//! certificate for localhost, client certificates per caller, and one from a
//! CA nobody trusts), and channels that present a chosen certificate.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::{eventually, Running};

/// Certificates in a temporary directory.
#[derive(Debug)]
pub struct Pki {
    pub dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_and_csr(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/O=Baton test/CN={cn}"),
        ],
    );
}

fn self_signed_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn sign(dir: &Path, ca: &str, name: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

impl Pki {
    /// A CA `ca`, a server certificate `server` for localhost and 127.0.0.1,
    /// and a CA `rogue` that nobody trusts.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        self_signed_ca(dir.path(), "ca");
        self_signed_ca(dir.path(), "rogue");
        key_and_csr(dir.path(), "server", "localhost");
        sign(
            dir.path(),
            "ca",
            "server",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        Pki { dir }
    }

    /// A server certificate saved as `name` (.crt, .key) for localhost and
    /// 127.0.0.1, signed by `ca` ("ca" or "rogue"): `server` is the one
    /// signed by "ca"; one signed by "rogue" is a server nobody should trust.
    pub fn server_named(&self, ca: &str, name: &str) -> String {
        key_and_csr(self.dir.path(), name, "localhost");
        sign(
            self.dir.path(),
            ca,
            name,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        );
        name.to_owned()
    }

    /// A client certificate for `identity` signed by `ca` ("ca" or
    /// "rogue"): with `identity` as DNS SAN and CN, or as CN only.
    pub fn client(&self, ca: &str, identity: &str, san: bool) -> String {
        let sans: &[&str] = if san { &[identity] } else { &[] };
        self.client_named(ca, &format!("{ca}-{identity}"), identity, sans)
    }

    /// A client certificate saved as `name` (.crt, .key) signed by `ca`,
    /// with common name `cn` and the DNS subject alternative names `sans`
    /// (none: no SAN extension).
    pub fn client_named(&self, ca: &str, name: &str, cn: &str, sans: &[&str]) -> String {
        key_and_csr(self.dir.path(), name, cn);
        let mut ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n".to_owned();
        if !sans.is_empty() {
            let dns: Vec<String> = sans.iter().map(|s| format!("DNS:{s}")).collect();
            ext.push_str(&format!("subjectAltName={}\n", dns.join(",")));
        }
        sign(self.dir.path(), ca, name, &ext);
        name.to_owned()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read pki file")
    }

    /// The services' TLS flags: server certificate, client CA, `callers`.
    pub fn server_args(&self, callers: &Path) -> baton_runtime::security::TlsArgs {
        baton_runtime::security::TlsArgs {
            tls_cert: Some(self.path("server.crt")),
            tls_key: Some(self.path("server.key")),
            client_ca: Some(self.path("ca.crt")),
            callers: Some(callers.to_owned()),
        }
    }

    /// A TLS channel to `addr` that trusts the CA and presents the client
    /// certificate `client` (a name [`Pki::client`] returned), or none.
    pub async fn channel(
        &self,
        addr: SocketAddr,
        client: Option<&str>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read("ca.crt")))
            .domain_name("localhost");
        if let Some(name) = client {
            tls = tls.identity(Identity::from_pem(
                self.read(&format!("{name}.crt")),
                self.read(&format!("{name}.key")),
            ));
        }
        Channel::from_shared(format!("https://{addr}"))
            .expect("uri")
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    /// Waits until `service` on `addr` reports SERVING over TLS.
    pub async fn wait_serving(&self, addr: SocketAddr, service: &str) {
        use tonic_health::pb::{
            health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
        };
        eventually(&format!("{service} serving over TLS"), || async move {
            let channel = self.channel(addr, None).await.ok()?;
            let r = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .ok()?;
            (r.get_ref().status() == ServingStatus::Serving).then_some(())
        })
        .await
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// The test configuration of `baton-ingest` serving on `grpc` and `http`.
pub fn ingest_config(
    nats_url: &str,
    catalog: &Path,
    grpc: &TcpListener,
    http: &TcpListener,
) -> baton_ingest::Config {
    baton_ingest::Config {
        nats_url: nats_url.to_owned(),
        listen: grpc.local_addr().expect("bound"),
        http_listen: http.local_addr().expect("bound"),
        catalog: catalog.to_owned(),
        stream_replicas: 1,
        publish_timeout: Duration::from_secs(2),
        max_future_skew: Duration::from_secs(300),
        cache_capacity: 10_000,
        cache_mb: 256,
        max_in_flight: baton_ingest::grpc::DEFAULT_MAX_IN_FLIGHT,
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
        failpoints: Vec::new(),
    }
}

/// Starts `baton-ingest` in this process with `config` changed by `tweak`
/// (TLS, NATS user, in-flight limit, ...). Does not wait for SERVING.
pub async fn start_ingest_configured(
    nats_url: &str,
    catalog: &Path,
    tweak: impl FnOnce(&mut baton_ingest::Config),
) -> Running {
    let grpc = listener().await;
    let http = listener().await;
    let addr = grpc.local_addr().expect("bound");
    let mut config = ingest_config(nats_url, catalog, &grpc, &http);
    tweak(&mut config);
    let http_addr = http.local_addr().expect("bound");
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = baton_ingest::run(config, grpc, http, token).await {
            panic!("ingest failed: {e}");
        }
    });
    let mut running = Running::new(addr, stop, task);
    running.http = Some(http_addr);
    running
}

/// Starts `baton-projector` in this process with `config` changed by
/// `tweak`. Does not wait for SERVING.
pub async fn start_projector_configured(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    tweak: impl FnOnce(&mut baton_projector::Config),
) -> Running {
    start_projector_configured_on(listener().await, nats_url, catalog, data_dir, tweak).await
}

/// [`start_projector_configured`] serving gRPC on `grpc`, bound beforehand
/// (so its URL can be handed to other projectors first).
pub async fn start_projector_configured_on(
    grpc: TcpListener,
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    tweak: impl FnOnce(&mut baton_projector::Config),
) -> Running {
    let http = listener().await;
    let addr = grpc.local_addr().expect("bound");
    let mut config = projector_config(nats_url, catalog, data_dir, &grpc, &http);
    tweak(&mut config);
    let http_addr = config.http_listen;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = baton_projector::run(config, grpc, http, token).await {
            panic!("projector failed: {e}");
        }
    });
    let mut running = Running::new(addr, stop, task);
    running.http = Some(http_addr);
    running
}

/// The test configuration of `baton-projector` serving on `grpc` and `http`.
pub fn projector_config(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    grpc: &TcpListener,
    http: &TcpListener,
) -> baton_projector::Config {
    baton_projector::Config {
        nats_url: nats_url.to_owned(),
        listen: grpc.local_addr().expect("bound"),
        http_listen: http.local_addr().expect("bound"),
        data_dir: data_dir.to_owned(),
        catalog: catalog.to_owned(),
        consumer: "baton-projector".into(),
        batch_size: 500,
        linger_ms: baton_projector::config::DEFAULT_LINGER_MS,
        partitions: 1,
        partition: 0,
        query_partitions: Vec::new(),
        query_tls: Default::default(),
        views_cache_mb: 64,
        announce_horizon: Duration::from_secs(3600),
        views_retention: Duration::ZERO,
        max_recorded_skew: Duration::from_secs(60),
        stall_after: Duration::from_secs(60),
        failpoints: Vec::new(),
        stream_replicas: 1,
        board: Default::default(),
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
    }
}
