//! Where a notice is delivered. A channel is a small trait, so a paging
//! product is one more implementation: deliver the body (the notice's
//! JSON) under the delivery's id, and say whether it arrived; every failure
//! is retried by [`crate::deliver`]'s backoff and parked after the last
//! attempt. [`WebhookChannel`] posts the JSON over HTTP(S), signed with
//! HMAC-SHA-256 over the timestamp and the body, and names the delivery so
//! the receiver can recognise a retry; [`EmailChannel`] sends it as a
//! plain-text message through an SMTP relay over STARTTLS, its
//! `Message-ID` made of the delivery id. [`AnyChannel`] is the one the
//! routes file configures: a new kind is a variant there, a key in the
//! routes file's channel (`crate::routes`) and its implementation.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use ring::hmac;

pub use crate::email::EmailChannel;
use crate::routes::{ChannelConfig, Webhook};

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
    /// An SMTP relay refused a command (a 4xx is retried like a 5xx: the
    /// retries and parking are the delivery loop's).
    #[error("the relay answered {code} {text}")]
    Smtp { code: u16, text: String },
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other failure of an e-mail: the relay broke the protocol, did
    /// not offer STARTTLS, the connection failed mid-way.
    #[error("SMTP: {0}")]
    Mail(String),
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
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    hook: Webhook,
    client: baton_runtime::http_client::Client,
}

/// Most of a receiver's answer read (it is not used).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl WebhookChannel {
    pub fn new(hook: Webhook) -> Result<WebhookChannel, String> {
        let client =
            baton_runtime::http_client::Client::for_url(&hook.url, hook.ca_file.as_deref())
                .map_err(|e| match e {
                    baton_runtime::http_client::ClientError::NoCa => {
                        "an https webhook needs ca_file, the CA that signs its certificate"
                            .to_owned()
                    }
                    other => other.to_string(),
                })?;
        Ok(WebhookChannel { hook, client })
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        self.hook.timeout
    }
}

impl Channel for WebhookChannel {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        use baton_runtime::http_client::RequestError;
        let now = jiff::Timestamp::now().as_second();
        let request = hyper::Request::post(self.hook.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("X-Baton-Delivery", delivery.id.as_str())
            .header("X-Baton-Timestamp", now.to_string())
            .header(
                "X-Baton-Signature",
                signature(&self.hook.secret, now, &delivery.body),
            )
            .body(Full::new(delivery.body.clone()))
            .map_err(|e| DeliveryError::Http(e.to_string()))?;
        let answer = self
            .client
            .send(request, MAX_ANSWER_BYTES, self.hook.timeout)
            .await
            .map_err(|e| match e {
                RequestError::TimedOut(after) => DeliveryError::TimedOut(after),
                RequestError::Connect(why) => DeliveryError::Connect(why),
                other => DeliveryError::Http(other.to_string()),
            })?;
        let status = answer.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    }
}

/// A channel of any kind the routes file configures.
#[derive(Debug, Clone)]
pub enum AnyChannel {
    Webhook(WebhookChannel),
    Email(EmailChannel),
}

impl AnyChannel {
    /// The channel `config` describes, its TLS set up; why not, if not.
    pub fn new(config: ChannelConfig) -> Result<AnyChannel, String> {
        match config {
            ChannelConfig::Webhook(hook) => WebhookChannel::new(hook).map(AnyChannel::Webhook),
            ChannelConfig::Email(email) => EmailChannel::new(email).map(AnyChannel::Email),
        }
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            AnyChannel::Webhook(c) => c.timeout(),
            AnyChannel::Email(c) => c.timeout(),
        }
    }
}

impl Channel for AnyChannel {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        match self {
            AnyChannel::Webhook(c) => c.deliver(delivery).await,
            AnyChannel::Email(c) => c.deliver(delivery).await,
        }
    }
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
