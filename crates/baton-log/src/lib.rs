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
pub mod version;

use std::time::Duration;

pub use error::{JetStreamCode, LogError, NatsError, NotReady, Request};
pub use events::{Appended, EventLog, RecordedEvent};
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
    security
        .apply(async_nats::ConnectOptions::new())
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
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
    security
        .apply(async_nats::ConnectOptions::new())
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        .connect(server_addrs(urls)?)
        .await
        .map_err(LogError::Connect)
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

/// Whether the client is connected right now.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

#[cfg(test)]
mod tests {
    use super::*;

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
