//! A signal from `BATON_SLA` as notify sees it: what routes match on, and
//! the JSON body a receiver gets. Pure.

use baton_client::Signal;
use baton_proto::convert::priority_word as priority;
use serde::Deserialize;
use serde_json::{json, Value};

/// The kinds of signal a route can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Breach,
    Correction,
    Warning,
    Escalation,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Breach => "breach",
            Kind::Correction => "correction",
            Kind::Warning => "warning",
            Kind::Escalation => "escalation",
        }
    }
}

/// One signal, ready to route and deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: Kind,
    /// The NATS subject it was announced on.
    pub subject: String,
    /// Its sequence in `BATON_SLA`: with the subject, what makes a delivery unique.
    pub sequence: u64,
    pub policy: String,
    pub supplier: String,
    pub customer: String,
    pub priority: String,
    pub handoff: String,
    /// An escalation's target.
    pub target: Option<String>,
    /// What the receiver gets.
    pub body: Value,
}

fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
        .map_or(Value::Null, |t| json!(t.to_string()))
}

/// The notice of a message from `BATON_SLA`, or `None` for one notify does
/// not route (an event, a disruption, a parked message).
pub fn notice(
    subject: &str,
    sequence: u64,
    payload: &[u8],
    board: &str,
) -> Result<Option<Notice>, baton_client::ClientError> {
    let (kind, target, breach, warning) = match baton_client::decode(subject, payload)? {
        Signal::Breach(b) => (Kind::Breach, None, Some(b), None),
        Signal::Correction(b) => (Kind::Correction, None, Some(b), None),
        Signal::Escalation { target, breach } => {
            (Kind::Escalation, Some(target), Some(breach), None)
        }
        Signal::Warning(w) => (Kind::Warning, None, None, Some(w)),
        Signal::Event(_) | Signal::Disruption(_) => return Ok(None),
    };
    let (policy, supplier, customer, prio, handoff, deadline) = match (&breach, &warning) {
        (Some(b), _) => (
            &b.policy_id,
            &b.supplier,
            &b.customer,
            b.priority,
            &b.handoff_id,
            &b.deadline,
        ),
        (None, Some(w)) => (
            &w.policy_id,
            &w.supplier,
            &w.customer,
            w.priority,
            &w.handoff_id,
            &w.deadline,
        ),
        (None, None) => return Ok(None),
    };
    let mut body = json!({
        "signal": kind.name(),
        "subject": subject,
        "policy": policy,
        "supplier": supplier,
        "customer": customer,
        "priority": priority(prio),
        "handoff": handoff,
        "deadline": time(deadline),
        "board": format!("{}/handoff/{handoff}", board.trim_end_matches('/')),
    });
    if let Some(t) = &target {
        body["escalated_to"] = json!(t);
    }
    Ok(Some(Notice {
        kind,
        subject: subject.to_owned(),
        sequence,
        policy: policy.clone(),
        supplier: supplier.clone(),
        customer: customer.clone(),
        priority: priority(prio),
        handoff: handoff.clone(),
        target,
        body,
    }))
}
