//! A small library for Rust services that follow Baton: subscribe to its
//! NATS topics and get typed messages (hand-off events, breaches,
//! corrections, warnings, escalations, disruptions), and call its gRPC API.
//!
//! It must never write to Baton's streams or hold state of its own: the
//! topics are read-only to subscribers (the shipped NATS permissions say so
//! too), and appending goes through the ingest service, which checks every
//! event. Payloads are the `baton.v1` protobuf messages, so a service in
//! another language can do the same with only the `.proto` files (see the
//! README, "Following Baton from another service").
//!
//! ```no_run
//! # async fn example() -> Result<(), baton_client::ClientError> {
//! use futures::StreamExt;
//! let nats = async_nats::connect("nats://127.0.0.1:4222").await.map_err(baton_client::ClientError::nats)?;
//! let mut breaches = baton_client::subscribe(&nats, &baton_client::Filter::breaches().supplier("lab")).await?;
//! while let Some(received) = breaches.next().await {
//!     if let baton_client::Signal::Breach(b) = received?.signal {
//!         println!("{} broke {} for {}", b.supplier, b.policy_id, b.customer);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod grpc;

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use baton_log::subject;
pub use baton_proto::v1;
use futures::Stream;

/// Why a subscription or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// NATS failed; the source is async-nats's error, its kind kept.
    #[error("nats: {0}")]
    Nats(#[source] async_nats::Error),
    #[error("{value:?} is not a valid {field}: {reason}")]
    InvalidFilter {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("message on {subject} is not a {expected}: {reason}")]
    Undecodable {
        subject: String,
        expected: &'static str,
        reason: String,
    },
    #[error("{subject} is not one of Baton's topics")]
    UnknownTopic { subject: String },
    #[error("grpc: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{url:?} is not a URL: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: tonic::codegen::http::uri::InvalidUri,
    },
    #[error("cannot reach {url}: {source}; is the service running?")]
    Unreachable {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("reading {path}: {source}", path = path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// A NATS failure, `e` kept as the source (to match on its kind).
    pub fn nats(e: impl Into<async_nats::Error>) -> ClientError {
        ClientError::Nats(e.into())
    }
}

/// One message from Baton's topics, decoded by its subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// `baton.handoff.…`: an accepted hand-off event.
    Event(v1::HandoffEvent),
    /// `baton.sla.breached.…`
    Breach(v1::Breach),
    /// `baton.sla.corrected.…`: an announced breach that a late event undid.
    Correction(v1::Breach),
    /// `baton.sla.warning.…`
    Warning(v1::SlaWarning),
    /// `baton.sla.escalated.<target>.…`
    Escalation { target: String, breach: v1::Breach },
    /// `baton.sla.acknowledged.…`: a breach whose escalation someone
    /// acknowledged (`acknowledged_by`, `acknowledged_at`).
    Acknowledgement(v1::Breach),
    /// `baton.disruption.…`
    Disruption(v1::DisruptionEvent),
}

/// A message and the subject it came on.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub subject: String,
    pub signal: Signal,
}

fn parse<M: prost::Message + Default>(
    subject: &str,
    payload: &[u8],
    expected: &'static str,
) -> Result<M, ClientError> {
    M::decode(payload).map_err(|e| ClientError::Undecodable {
        subject: subject.to_owned(),
        expected,
        reason: e.to_string(),
    })
}

/// Decodes a message of one of Baton's topics by its subject.
pub fn decode(subject: &str, payload: &[u8]) -> Result<Signal, ClientError> {
    let unknown = || ClientError::UnknownTopic {
        subject: subject.to_owned(),
    };
    use subject::{Signal as Sla, Topic as On};
    match subject::topic(subject).ok_or_else(unknown)? {
        On::Event => parse(subject, payload, "HandoffEvent").map(Signal::Event),
        On::Disruption => parse(subject, payload, "DisruptionEvent").map(Signal::Disruption),
        On::Signal(Sla::Breached) => parse(subject, payload, "Breach").map(Signal::Breach),
        On::Signal(Sla::Corrected) => parse(subject, payload, "Breach").map(Signal::Correction),
        On::Signal(Sla::Warning) => parse(subject, payload, "SlaWarning").map(Signal::Warning),
        On::Signal(Sla::Acknowledged) => {
            parse(subject, payload, "Breach").map(Signal::Acknowledgement)
        }
        On::Escalation { target } => {
            parse(subject, payload, "Breach").map(|breach| Signal::Escalation {
                target: target.to_owned(),
                breach,
            })
        }
        // Escalations are read with their target; parked messages are not Baton's.
        On::Signal(Sla::Escalated) | On::Deadletter => Err(unknown()),
    }
}

/// Which topic, narrowed by promise, supplier and customer where the
/// topic's subjects carry them.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    topic: Topic,
    policy: Option<String>,
    supplier: Option<String>,
    customer: Option<String>,
    target: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Topic {
    /// Every SLA signal.
    #[default]
    Sla,
    Breaches,
    Corrections,
    Warnings,
    Escalations,
    Events,
    Disruptions,
}

impl Filter {
    /// Breaches, corrections, warnings and escalations.
    pub fn sla() -> Filter {
        Filter::default()
    }
    pub fn breaches() -> Filter {
        Filter::of(Topic::Breaches)
    }
    pub fn corrections() -> Filter {
        Filter::of(Topic::Corrections)
    }
    pub fn warnings() -> Filter {
        Filter::of(Topic::Warnings)
    }
    /// Breaches escalated to `target` (e.g. `duty-coordinator`).
    pub fn escalations(target: &str) -> Filter {
        Filter {
            target: Some(target.to_owned()),
            ..Filter::of(Topic::Escalations)
        }
    }
    /// Every accepted hand-off event.
    pub fn events() -> Filter {
        Filter::of(Topic::Events)
    }
    pub fn disruptions() -> Filter {
        Filter::of(Topic::Disruptions)
    }

    fn of(topic: Topic) -> Filter {
        Filter {
            topic,
            ..Filter::default()
        }
    }

    pub fn policy(mut self, policy: &str) -> Filter {
        self.policy = Some(policy.to_owned());
        self
    }
    pub fn supplier(mut self, supplier: &str) -> Filter {
        self.supplier = Some(supplier.to_owned());
        self
    }
    pub fn customer(mut self, customer: &str) -> Filter {
        self.customer = Some(customer.to_owned());
        self
    }

    /// The NATS subject filter; refuses a value that is not a token, so no
    /// filter can add a level or a wildcard.
    pub fn subject(&self) -> Result<String, ClientError> {
        let token = |field: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    baton_domain::Token::parse(v).map_err(|e| ClientError::InvalidFilter {
                        field,
                        value: v.to_owned(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        let (p, s, c) = (
            token("policy", &self.policy)?,
            token("supplier", &self.supplier)?,
            token("customer", &self.customer)?,
        );
        let (p, s, c) = (p.as_ref(), s.as_ref(), c.as_ref());
        let signal = |signal| subject::signal_filter(signal, p, s, c);
        Ok(match self.topic {
            Topic::Sla if p.is_none() && s.is_none() && c.is_none() => subject::ALL_SLA.to_owned(),
            Topic::Sla => signal(None),
            Topic::Breaches => signal(Some(subject::Signal::Breached)),
            Topic::Corrections => signal(Some(subject::Signal::Corrected)),
            Topic::Warnings => signal(Some(subject::Signal::Warning)),
            Topic::Escalations => {
                let target = token("target", &self.target)?;
                subject::escalation_filter(target.as_ref(), p, s, c)
            }
            Topic::Events => subject::events_filter(s, c),
            Topic::Disruptions => subject::disruptions_filter(s),
        })
    }
}

/// Typed messages from one topic, from the moment of subscribing.
#[derive(Debug)]
pub struct Subscription {
    inner: async_nats::Subscriber,
}

impl Stream for Subscription {
    type Item = Result<Received, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx).map(|message| {
            message.map(|m| {
                decode(&m.subject, &m.payload).map(|signal| Received {
                    subject: m.subject.to_string(),
                    signal,
                })
            })
        })
    }
}

/// Subscribes to `filter`'s topic. Live only: for history, read the
/// streams (`BATON_HANDOFFS`, `BATON_SLA`) with a JetStream consumer and
/// [`decode`] each message.
pub async fn subscribe(
    client: &async_nats::Client,
    filter: &Filter,
) -> Result<Subscription, ClientError> {
    let inner = client
        .subscribe(filter.subject()?)
        .await
        .map_err(ClientError::nats)?;
    // The server has the subscription once this returns: nothing published
    // after it is missed.
    client.flush().await.map_err(ClientError::nats)?;
    Ok(Subscription { inner })
}

/// The ingest service's client, in plaintext (see [`grpc`] for TLS).
pub async fn ingest(
    url: &str,
) -> Result<v1::ingest_client::IngestClient<tonic::transport::Channel>, ClientError> {
    grpc::ingest(url, None).await
}

/// The projector's query client, in plaintext (see [`grpc`] for TLS).
pub async fn query(
    url: &str,
) -> Result<v1::query_client::QueryClient<tonic::transport::Channel>, ClientError> {
    grpc::query(url, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn filters_become_subjects() {
        let f = |filter: Filter| filter.subject().expect("subject");
        assert_eq!(f(Filter::sla()), "baton.sla.>");
        assert_eq!(
            f(Filter::breaches().supplier("lab")),
            "baton.sla.breached.*.lab.*.*"
        );
        assert_eq!(
            f(Filter::escalations("duty-coordinator").policy("blood-issue")),
            "baton.sla.escalated.duty-coordinator.blood-issue.*.*.*"
        );
        assert_eq!(
            f(Filter::disruptions().supplier("lab")),
            "baton.disruption.lab.*"
        );
        assert!(matches!(
            Filter::warnings().customer("ward.5").subject(),
            Err(ClientError::InvalidFilter {
                field: "customer",
                ..
            })
        ));
    }

    #[test]
    fn messages_decode_by_subject() {
        let breach = v1::Breach {
            handoff_id: "h1".into(),
            ..Default::default()
        };
        let bytes = breach.encode_to_vec();
        assert_eq!(
            decode("baton.sla.escalated.duty.p.s.c.h1", &bytes).expect("decodes"),
            Signal::Escalation {
                target: "duty".into(),
                breach: breach.clone()
            }
        );
        assert_eq!(
            decode("baton.sla.corrected.p.s.c.h1", &bytes).expect("decodes"),
            Signal::Correction(breach)
        );
        assert!(matches!(
            decode("other.topic", &bytes),
            Err(ClientError::UnknownTopic { .. })
        ));
        assert!(matches!(
            decode("baton.sla.warning.p.s.c.h1", &[0xff, 0xff]),
            Err(ClientError::Undecodable { .. })
        ));
    }
}
