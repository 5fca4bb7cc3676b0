//! The e-mail channel: each notice a plain-text message through the
//! hospital's SMTP relay ([`crate::smtp`], STARTTLS required). The message
//! is rendered from the notice's JSON body alone, so it holds what a
//! webhook gets and nothing more (no patient data exists there). Its
//! `Message-ID` is made of the delivery id, the same on every attempt, so a
//! retry reads to mail software as the same message; `X-Baton-Delivery`
//! names the id as a webhook's header does.

use std::{fmt::Write as _, time::Duration};

use serde_json::{Map, Value};

use crate::{
    channel::{Channel, Delivery, DeliveryError},
    routes::Email,
    smtp::{self, SendError, SmtpError},
};

/// The fields of a notice in the order a reader wants them; any other
/// field the notice holds follows, by name.
const ORDER: &[&str] = &[
    "signal",
    "phase",
    "supplier",
    "customer",
    "policy",
    "priority",
    "handoff",
    "deadline",
    "escalated_to",
    "disruption",
    "kind",
    "scope",
    "reason",
    "occurred_at",
    "subject",
    "board",
];

/// The longest a value is written, in bytes: SMTP lines end at 998.
const MAX_VALUE: usize = 900;
/// The longest a value is written in the subject line.
const MAX_SUBJECT_VALUE: usize = 120;

/// Why a notice cannot be rendered as a message.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the notice is not a JSON object: {0}")]
    NotAnObject(String),
}

/// A value as one line of text: control characters (CR, LF above all)
/// become spaces, so no value can start a header or a line of its own;
/// at most `max` bytes.
fn line(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    };
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() > max {
        let mut end = max;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str(" [cut]");
    }
    clean
}

/// The subject line: what happened, where, how urgent.
pub fn subject(notice: &Map<String, Value>) -> String {
    let field = |name: &str| {
        notice
            .get(name)
            .map(|v| line(v, MAX_SUBJECT_VALUE))
            .unwrap_or_default()
    };
    let signal = field("signal");
    match signal.as_str() {
        "disruption" => {
            let reason = field("reason");
            let mut s = format!(
                "[Baton] disruption {}: {}",
                field("phase"),
                field("supplier")
            );
            if !reason.is_empty() {
                let _ = write!(s, " ({reason})");
            }
            s
        }
        "breach" | "warning" | "correction" | "escalation" => {
            let mut s = format!(
                "[Baton] {signal}: {} -> {}, {} ({})",
                field("supplier"),
                field("customer"),
                field("policy"),
                field("priority")
            );
            if notice.contains_key("escalated_to") {
                let _ = write!(s, ", escalated to {}", field("escalated_to"));
            }
            s
        }
        _ => format!("[Baton] {signal}"),
    }
}

/// A header value as it may be written: as it is when ASCII, else as
/// RFC 2047 encoded words (UTF-8, base64) folded onto lines of their own.
fn header_value(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    // 39 bytes make 52 of base64: a word of 64 characters, a line of at
    // most 78 with the header's name (RFC 2047 2, RFC 5322 2.1.1).
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 39).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?utf-8?b?{}?=",
            smtp::base64(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// The whole message, headers and body, lines ended by CRLF (dots are
/// [`smtp::dot_stuffed`]'s). `date` is the attempt's.
pub fn render(
    delivery: &Delivery,
    from: &str,
    to: &[String],
    date: jiff::Timestamp,
) -> Result<String, RenderError> {
    let notice: Value = serde_json::from_slice(&delivery.body)
        .map_err(|e| RenderError::NotAnObject(e.to_string()))?;
    let Value::Object(notice) = notice else {
        return Err(RenderError::NotAnObject("it is not an object".to_owned()));
    };
    let date =
        jiff::fmt::rfc2822::to_string(&date.to_zoned(jiff::tz::TimeZone::UTC)).unwrap_or_default();
    let mut m = String::new();
    let _ = write!(m, "From: <{from}>\r\n");
    let to: Vec<String> = to.iter().map(|a| format!("<{a}>")).collect();
    let _ = write!(m, "To: {}\r\n", to.join(",\r\n "));
    let _ = write!(m, "Subject: {}\r\n", header_value(&subject(&notice)));
    if !date.is_empty() {
        let _ = write!(m, "Date: {date}\r\n");
    }
    let _ = write!(m, "Message-ID: <{}@baton>\r\n", delivery.id);
    let _ = write!(m, "X-Baton-Delivery: {}\r\n", delivery.id);
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n");
    m.push_str("\r\n");
    let mut names: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|n| notice.contains_key(*n))
        .collect();
    names.extend(
        notice
            .keys()
            .map(String::as_str)
            .filter(|k| !ORDER.contains(k)),
    );
    for name in names {
        if let Some(value) = notice.get(name) {
            let _ = write!(
                m,
                "{}: {}\r\n",
                line(&Value::from(name), 64),
                line(value, MAX_VALUE)
            );
        }
    }
    Ok(m)
}

/// An SMTP relay and its mailboxes, with TLS set up once.
#[derive(Clone)]
pub struct EmailChannel {
    email: Email,
    tls: baton_runtime::tls_client::TlsConnector,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// The channel, its relay trusted only by `ca_file`.
    pub fn new(email: Email) -> Result<EmailChannel, String> {
        let tls = baton_runtime::tls_client::connector(&email.ca_file)
            .map_err(|e| format!("ca_file: {e}"))?;
        baton_runtime::tls_client::server_name(&email.host).map_err(|e| e.to_string())?;
        Ok(EmailChannel { email, tls })
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        self.email.timeout
    }
}

impl Channel for EmailChannel {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let e = &self.email;
        let message = render(delivery, &e.from, &e.to, jiff::Timestamp::now())
            .map_err(|e| DeliveryError::Mail(e.to_string()))?;
        let envelope = smtp::Envelope {
            host: &e.host,
            port: e.port,
            from: &e.from,
            to: &e.to,
            login: e.login.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            message: &message,
        };
        smtp::send(&self.tls, &envelope, e.timeout)
            .await
            .map_err(|e| match e {
                SendError::TimedOut(after) => DeliveryError::TimedOut(after),
                SendError::Smtp(SmtpError::Connect(why)) => DeliveryError::Connect(why),
                SendError::Smtp(SmtpError::Reply { code, text }) => {
                    DeliveryError::Smtp { code, text }
                }
                SendError::Smtp(SmtpError::Tls(why)) => DeliveryError::Tls(why),
                SendError::Smtp(other) => DeliveryError::Mail(other.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: Value) -> Delivery {
        Delivery {
            id: "0123456789abcdef0123456789abcdef".into(),
            body: body.to_string().into(),
        }
    }

    fn breach() -> Value {
        serde_json::json!({
            "signal": "breach",
            "subject": "baton.sla.breach.repair-response.pump-41",
            "policy": "repair-response",
            "supplier": "engineering",
            "customer": "ward-5",
            "priority": "stat",
            "handoff": "pump-41",
            "deadline": "2026-12-06T01:00:02Z",
            "board": "http://board.test/handoff/pump-41",
        })
    }

    fn at() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_796_464_200).expect("valid")
    }

    #[test]
    fn a_breach_renders_as_a_plain_text_message_of_its_fields() {
        let m = render(
            &delivery(breach()),
            "baton@hospital.test",
            &["ward-5@hospital.test".into(), "eng@hospital.test".into()],
            at(),
        )
        .expect("renders");
        let (head, body) = m.split_once("\r\n\r\n").expect("head and body");
        assert_eq!(
            head,
            "From: <baton@hospital.test>\r\n\
             To: <ward-5@hospital.test>,\r\n <eng@hospital.test>\r\n\
             Subject: [Baton] breach: engineering -> ward-5, repair-response (stat)\r\n\
             Date: Sat, 5 Dec 2026 09:50:00 +0000\r\n\
             Message-ID: <0123456789abcdef0123456789abcdef@baton>\r\n\
             X-Baton-Delivery: 0123456789abcdef0123456789abcdef\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit"
        );
        assert_eq!(
            body,
            "signal: breach\r\nsupplier: engineering\r\ncustomer: ward-5\r\n\
             policy: repair-response\r\npriority: stat\r\nhandoff: pump-41\r\n\
             deadline: 2026-12-06T01:00:02Z\r\n\
             subject: baton.sla.breach.repair-response.pump-41\r\n\
             board: http://board.test/handoff/pump-41\r\n"
        );
    }

    #[test]
    fn a_disruption_names_its_phase_and_reason() {
        let notice = serde_json::json!({
            "signal": "disruption", "phase": "started", "supplier": "lab",
            "reason": "analyzer down", "kind": "lab", "scope": "",
            "disruption": "analyzer-2", "occurred_at": null,
            "board": "http://board.test/department/lab",
        });
        let Value::Object(map) = &notice else {
            panic!("an object")
        };
        assert_eq!(
            subject(map),
            "[Baton] disruption started: lab (analyzer down)"
        );
        let m = render(&delivery(notice), "a@b", &["c@d".into()], at()).expect("renders");
        assert!(m.contains("\r\noccurred_at: (none)\r\n"), "{m}");
        assert!(
            m.ends_with("board: http://board.test/department/lab\r\n"),
            "{m}"
        );
    }

    #[test]
    fn no_value_can_add_a_header_or_a_line() {
        let mut notice = breach();
        notice["supplier"] = Value::from("engineering\r\nBcc: someone@else.test");
        notice["policy"] = Value::from("x\n.\nRCPT TO:<x@y>");
        let m = render(&delivery(notice), "a@b", &["c@d".into()], at()).expect("renders");
        assert!(!m.contains("\r\nBcc:") && !m.contains("\nRCPT"), "{m}");
        assert!(
            m.contains("Subject: [Baton] breach: engineering  Bcc: someone@else.test -> "),
            "{m}"
        );
        // Only the CRLFs the renderer writes.
        assert_eq!(m.matches('\n').count(), m.matches("\r\n").count());
        assert_eq!(m.matches('\r').count(), m.matches("\r\n").count());
    }

    #[test]
    fn a_subject_beyond_ascii_is_encoded() {
        let mut notice = breach();
        notice["supplier"] = Value::from("pharmacie-générale");
        let m = render(&delivery(notice), "a@b", &["c@d".into()], at()).expect("renders");
        let subject = m
            .lines()
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .collect::<Vec<_>>();
        assert!(
            subject.iter().all(|l| l.is_ascii() && l.len() <= 78),
            "{subject:?}"
        );
        assert!(subject[0].starts_with("Subject: =?utf-8?b?"), "{subject:?}");
        assert!(m.contains("supplier: pharmacie-générale\r\n"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert!(render(&delivery(Value::from(3)), "a@b", &["c@d".into()], at()).is_err());
    }
}
