//! Baton's log of record on NATS JetStream.
//!
//! Every accepted hand-off event is one message in the `BATON_HANDOFFS`
//! stream; every SLA announcement (a breach) is one message in `BATON_SLA`.
//! This crate knows the subject scheme, the payload encoding and the
//! JetStream conditions that make appends safe between racing writers:
//! - [`subject`]: the subject scheme, the one place subjects are spelt.
//! - [`streams`]: creating and checking the two streams.
//! - [`events`]: conditional appends and per-hand-off history reads.
//! - [`disruptions`]: conditional appends and history reads of disruptions.
//! - [`signals`]: announcing a breach exactly once, however often it is tried.
//! - [`deadletter`]: parking messages on our subjects that are not Baton events.
//! - [`partitions`]: the stream split by hand-off for projectors sharing the work.
//! - [`version`]: the oldest nats-server Baton runs against, checked at start.
//! - [`error`]: why the log failed, with NATS's error kind and JetStream code kept.
//!
//! It must never decide what is allowed (that is the domain's lifecycle) and
//! never hold state of its own: JetStream is the state.

pub mod deadletter;
pub mod disruptions;
pub mod error;
pub mod events;
pub mod partitions;
pub mod signals;
pub mod streams;
pub mod subject;
pub mod trace;
pub mod version;

use std::time::Duration;

pub use error::{JetStreamCode, LogError, NatsError, NotReady, Request};
pub use events::{Appended, EventLog, LoggedEvent};
pub use partitions::Partition;
pub use streams::StreamSettings;

/// How a service proves itself to NATS and checks NATS in turn: a user and
/// password (the server's `authorization { users = [...] }`, each user with
/// its subject permissions, see `deploy/nats/auth.conf`) and TLS (a CA to
/// trust, and a client certificate when the server verifies clients).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsSecurity {
    /// NATS user name (with --nats-password); see deploy/nats/auth.conf.
    #[arg(long, env = "NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password for --nats-user.
    #[arg(
        long,
        env = "NATS_PASSWORD",
        requires = "nats_user",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,

    /// CA certificate (PEM) to verify the NATS server with; connects with TLS only.
    #[arg(long, env = "NATS_CA")]
    pub nats_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for NATS servers that verify clients (with --nats-key).
    #[arg(long, env = "NATS_CERT", requires = "nats_key")]
    pub nats_cert: Option<std::path::PathBuf>,

    /// Private key (PEM) of --nats-cert.
    #[arg(long, env = "NATS_KEY", requires = "nats_cert")]
    pub nats_key: Option<std::path::PathBuf>,
}

impl NatsSecurity {
    fn apply(&self, mut options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.nats_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.nats_cert, &self.nats_key) {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        options
    }
}

/// Connects to NATS at `urls`, one URL or several separated by commas (the
/// servers of a cluster: the client fails over between them), with a user and
/// TLS as `security` says. The connection retries in the background (also the
/// first time), so a service can start, report NOT_SERVING and recover by
/// itself when NATS comes up.
pub async fn connect_secured(
    urls: &str,
    name: &str,
    security: &NatsSecurity,
) -> Result<async_nats::Client, LogError> {
    options(name, security)
        .retry_on_initial_connect()
        .reconnect_delay_callback(reconnect_delay)
        .connect(server_addrs(urls)?)
        .await
        .map_err(LogError::Connect)
}

/// Connects once, as a command-line tool does: fails (naming why) if no
/// server of `urls` answers within 2 s, instead of retrying in the background.
pub async fn connect_once(
    urls: &str,
    name: &str,
    security: &NatsSecurity,
) -> Result<async_nats::Client, LogError> {
    options(name, security)
        .connect(server_addrs(urls)?)
        .await
        .map_err(LogError::Connect)
}

/// What every connection of Baton's sets: its name (NATS's monitoring shows
/// it), the user and TLS, and 2 s for a server to answer.
fn options(name: &str, security: &NatsSecurity) -> async_nats::ConnectOptions {
    security
        .apply(async_nats::ConnectOptions::new())
        .name(name)
        .connection_timeout(Duration::from_secs(2))
}

/// Parses a comma-separated list of NATS URLs. async-nats reads a `&str` as
/// one URL, so `nats://a:4222,nats://b:4222` must be split here.
fn server_addrs(urls: &str) -> Result<Vec<async_nats::ServerAddr>, LogError> {
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|source| LogError::BadUrl {
                    url: url.to_owned(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(LogError::NoUrl(urls.to_owned()));
    }
    Ok(addrs)
}

/// Longest wait between two attempts to reconnect to NATS: the delay
/// doubles from 2 ms up to this (async-nats's schedule, fixed here so the
/// logs and docs can say it).
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(4);

fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(attempts - 1).unwrap_or(u32::MAX).min(32);
    Duration::from_millis(2_u64.saturating_pow(doublings)).min(MAX_RECONNECT_DELAY)
}

/// Why no server of `urls` answers, in a sentence an operator can act on:
/// `NATS at nats://10.0.0.5:4222 cannot be reached: connection refused`.
/// Tries a TCP connection to each (2 s at most each); a server that takes
/// the connection is reported as reachable but not (yet) speaking NATS to
/// us (TLS, credentials, or it is still starting).
pub async fn why_unreachable(urls: &str) -> String {
    let addrs = match server_addrs(urls) {
        Ok(addrs) => addrs,
        Err(e) => return e.to_string(),
    };
    let mut reasons = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        let target = (addr.host(), addr.port());
        let tried = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(target),
        )
        .await;
        let why = match tried {
            Err(_) => "no answer within 2 s".to_owned(),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_owned()
            }
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "it takes connections but the client is not connected (TLS, credentials, or still starting)".to_owned(),
        };
        reasons.push(format!("{}:{} {why}", addr.host(), addr.port()));
    }
    format!(
        "NATS at {} cannot be reached: {}; retrying, at least every {} s",
        urls.trim(),
        reasons.join(", "),
        MAX_RECONNECT_DELAY.as_secs()
    )
}

/// Whether the client is connected right now.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_come_at_least_every_max_delay() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(2));
        assert_eq!(reconnect_delay(5), Duration::from_millis(16));
        assert_eq!(reconnect_delay(13), MAX_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_refused_with_its_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let why = why_unreachable(&format!("nats://127.0.0.1:{port}")).await;
        assert_eq!(
            why,
            format!("NATS at nats://127.0.0.1:{port} cannot be reached: 127.0.0.1:{port} connection refused; retrying, at least every 4 s")
        );
    }

    #[test]
    fn a_comma_separated_list_names_every_server() {
        let addrs =
            server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224")
                .expect("three urls");
        let ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
        assert_eq!(ports, [4222, 4223, 4224]);
        assert_eq!(
            server_addrs("nats://127.0.0.1:4222").map(|a| a.len()).ok(),
            Some(1)
        );
        assert!(matches!(server_addrs(" , "), Err(LogError::NoUrl(_))));
        assert!(matches!(
            server_addrs("nats://127.0.0.1:notaport"),
            Err(LogError::BadUrl { .. })
        ));
    }
}
