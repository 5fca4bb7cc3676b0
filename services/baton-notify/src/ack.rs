//! Acknowledging an escalation from the notice itself: a link, signed by
//! notify with its own key, that names the hand-off, who it was sent to and
//! when it expires. Opening it shows a page with one button (a mail
//! scanner or a link preview that fetches the page acknowledges nothing);
//! pressing it has notify append ESCALATION_ACKNOWLEDGED through ingest as
//! its own (operator) caller, with the link's addressee as the actor.
//!
//! The link is its own authentication: the side port lets `/ack` through
//! without a caller certificate or a screen's session, and notify refuses a
//! link whose signature does not check out or whose time is past. It must
//! never take the hand-off or the addressee from anything but a link it
//! signed, and never append anything but an acknowledgement.

use std::{path::Path, sync::Arc, time::Duration};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
    Form, Router,
};
use ring::hmac;
use serde::Deserialize;

/// Why acknowledging links cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AckSetupError {
    #[error("--ack-key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("--ack-url is needed with --ack-key: the address people reach this side port at")]
    NoUrl,
    #[error("ingest client: {0}")]
    Ingest(#[from] baton_client::ClientError),
}

/// What a link says, once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Link {
    /// The hand-off whose escalation is acknowledged.
    pub handoff: String,
    /// Who the link was sent to: `<route>.<channel>`.
    pub by: String,
    /// Unix seconds after which the link is refused.
    pub expires: i64,
    /// Hex HMAC-SHA-256 of `handoff|by|expires` with notify's key.
    pub sig: String,
}

/// Why a link is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link was not made by Baton (its signature does not match)")]
    Forged,
    #[error("this link expired: acknowledge from an operator's terminal with batonctl ack <hand-off> --by <your id>")]
    Expired,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn signed(handoff: &str, by: &str, expires: i64) -> String {
    format!("{handoff}|{by}|{expires}")
}

/// Signs and checks links (pure but for reading the key).
#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Reads the key file: at least 32 bytes.
    pub fn from_file(path: &Path) -> Result<Signer, AckSetupError> {
        let key = |reason: String| AckSetupError::Key {
            path: path.display().to_string(),
            reason,
        };
        let secret = std::fs::read(path).map_err(|e| key(e.to_string()))?;
        if secret.len() < 32 {
            return Err(key("the key must be at least 32 bytes".into()));
        }
        Ok(Signer::new(&secret))
    }

    /// The query string of a link for `handoff`, sent to `by`, valid until
    /// `expires` (unix seconds).
    pub fn query(&self, handoff: &str, by: &str, expires: i64) -> String {
        let tag = hmac::sign(&self.key, signed(handoff, by, expires).as_bytes());
        format!(
            "handoff={handoff}&by={by}&expires={expires}&sig={}",
            hex(tag.as_ref())
        )
    }

    /// Whether `link` is one of ours and still valid at `now` (unix seconds).
    pub fn check(&self, link: &Link, now: i64) -> Result<(), LinkError> {
        let tag = (0..link.sig.len())
            .step_by(2)
            .map(|i| {
                link.sig
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(LinkError::Forged)?;
        hmac::verify(
            &self.key,
            signed(&link.handoff, &link.by, link.expires).as_bytes(),
            &tag,
        )
        .map_err(|_| LinkError::Forged)?;
        if now > link.expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

/// What the notices carry and the `/ack` page needs.
#[derive(Debug, Clone)]
pub struct Acks {
    pub signer: Signer,
    /// Where people reach this side port (`https://notify.hospital.internal:9454`).
    pub base_url: String,
    pub lifetime: Duration,
    pub ingest: baton_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>,
}

impl Acks {
    /// The link for an escalation of `handoff` sent on `route`'s `channel`.
    pub fn link(&self, handoff: &str, route: &str, channel: &str) -> String {
        let expires = jiff::Timestamp::now().as_second() + self.lifetime.as_secs() as i64;
        let by = format!("{route}.{channel}");
        format!(
            "{}/ack?{}",
            self.base_url.trim_end_matches('/'),
            self.signer.query(handoff, &by, expires)
        )
    }
}

/// `GET /ack` (the page with its button) and `POST /ack` (acknowledge).
pub fn router(acks: Arc<Acks>) -> Router {
    Router::new()
        .route("/ack", get(page).post(acknowledge))
        .with_state(acks)
}

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>Baton</title><p>{}</p>",
            escaped(why)
        )),
    )
        .into_response()
}

async fn page(State(acks): State<Arc<Acks>>, Query(link): Query<Link>) -> Response {
    if let Err(e) = acks.signer.check(&link, jiff::Timestamp::now().as_second()) {
        return refused(status_of(&e), &e.to_string());
    }
    let field = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escaped(value)
        )
    };
    Html(format!(
        "<!doctype html><meta name=\"viewport\" content=\"width=device-width\"><title>Baton: acknowledge</title>\
         <h1>Escalation of hand-off {handoff}</h1>\
         <p>Acknowledge it as <strong>{by}</strong>: you are on it, and the next level is not told.</p>\
         <form method=\"post\" action=\"ack\">{h}{b}{e}{s}<button type=\"submit\">Acknowledge</button></form>",
        handoff = escaped(&link.handoff),
        by = escaped(&link.by),
        h = field("handoff", &link.handoff),
        b = field("by", &link.by),
        e = field("expires", &link.expires.to_string()),
        s = field("sig", &link.sig),
    ))
    .into_response()
}

fn status_of(e: &LinkError) -> StatusCode {
    match e {
        LinkError::Forged => StatusCode::FORBIDDEN,
        LinkError::Expired => StatusCode::GONE,
    }
}

async fn acknowledge(State(acks): State<Arc<Acks>>, Form(link): Form<Link>) -> Response {
    let now = jiff::Timestamp::now();
    if let Err(e) = acks.signer.check(&link, now.as_second()) {
        tracing::warn!(error = %e, "an acknowledgement link refused");
        return refused(status_of(&e), &e.to_string());
    }
    let event = baton_proto::v1::HandoffEvent {
        // One acknowledgement per link: pressing twice is a duplicate.
        event_id: format!(
            "ack-{}-{}",
            link.by,
            baton_domain::privacy::id_number(link.expires.unsigned_abs())
        ),
        handoff_id: link.handoff.clone(),
        r#type: baton_proto::v1::EventType::EscalationAcknowledged as i32,
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.as_second(),
            nanos: now.subsec_nanosecond(),
        }),
        actor: link.by.clone(),
        ..Default::default()
    };
    let mut ingest = acks.ingest.clone();
    let request = baton_proto::v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill: false,
    };
    match ingest.append(request).await {
        Ok(_) => {
            tracing::info!(handoff = %link.handoff, by = %link.by, "escalation acknowledged by link");
            Html(format!(
                "<!doctype html><title>Baton</title><p>Acknowledged: hand-off {} by {}.</p>",
                escaped(&link.handoff),
                escaped(&link.by)
            ))
            .into_response()
        }
        Err(status) => {
            tracing::warn!(handoff = %link.handoff, error = %status.message(), "acknowledgement by link not recorded");
            refused(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "not recorded: ingest answered {:?}: {}; try again, or batonctl ack",
                    status.code(),
                    status.message()
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(query: &str) -> Link {
        let mut parts = std::collections::BTreeMap::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').expect("k=v");
            parts.insert(k, v.to_owned());
        }
        Link {
            handoff: parts["handoff"].clone(),
            by: parts["by"].clone(),
            expires: parts["expires"].parse().expect("number"),
            sig: parts["sig"].clone(),
        }
    }

    #[test]
    fn a_link_checks_out_until_it_expires_and_not_once_changed() {
        let signer = Signer::new(b"an-ack-key-of-at-least-32-bytes!!");
        let good = link(&signer.query("pump-81", "duty.duty-pager", 1_000));
        assert_eq!(signer.check(&good, 999), Ok(()));
        assert_eq!(signer.check(&good, 1_001), Err(LinkError::Expired));
        for changed in [
            Link {
                handoff: "pump-82".into(),
                ..good.clone()
            },
            Link {
                by: "duty.manager-pager".into(),
                ..good.clone()
            },
            Link {
                expires: 9_999,
                ..good.clone()
            },
            Link {
                sig: "zz".into(),
                ..good.clone()
            },
        ] {
            assert_eq!(signer.check(&changed, 999), Err(LinkError::Forged));
        }
        let other = Signer::new(b"another-key-of-at-least-32-bytes!");
        assert_eq!(other.check(&good, 999), Err(LinkError::Forged));
    }
}
