//! A signal as notify sees it (from `BATON_SLA`, or a disruption from the
//! events stream): what routes match on, and the JSON body a receiver gets.
//! Pure.

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
    Disruption,
    /// Someone acknowledged a breach's escalation.
    Acknowledgement,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Breach => "breach",
            Kind::Correction => "correction",
            Kind::Warning => "warning",
            Kind::Escalation => "escalation",
            Kind::Disruption => "disruption",
            Kind::Acknowledgement => "acknowledgement",
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

/// The notice of a signal, or `None` for a message notify does not route
/// (an event, a parked message).
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
        Signal::Acknowledgement(b) => (Kind::Acknowledgement, None, Some(b), None),
        Signal::Warning(w) => (Kind::Warning, None, None, Some(w)),
        Signal::Disruption(d) => return Ok(Some(disruption(subject, sequence, &d, board))),
        Signal::Event(_) => return Ok(None),
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
    if let Some(b) = breach.as_ref().filter(|b| !b.acknowledged_by.is_empty()) {
        body["acknowledged_by"] = json!(b.acknowledged_by);
        body["acknowledged_at"] = time(&b.acknowledged_at);
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

/// A disruption's start or end: routed by its supplier; it has no customer,
/// promise or priority of its own.
fn disruption(
    subject: &str,
    sequence: u64,
    d: &baton_proto::v1::DisruptionEvent,
    board: &str,
) -> Notice {
    let phase = match baton_proto::v1::DisruptionPhase::try_from(d.phase) {
        Ok(baton_proto::v1::DisruptionPhase::Ended) => "ended",
        _ => "started",
    };
    let body = json!({
        "signal": "disruption",
        "subject": subject,
        "disruption": d.disruption_id,
        "phase": phase,
        "supplier": d.supplier,
        "kind": d.kind,
        "scope": d.scope,
        "reason": d.reason,
        "occurred_at": time(&d.occurred_at),
        "board": format!("{}/department/{}", board.trim_end_matches('/'), d.supplier),
    });
    Notice {
        kind: Kind::Disruption,
        subject: subject.to_owned(),
        sequence,
        policy: String::new(),
        supplier: d.supplier.clone(),
        customer: String::new(),
        priority: String::new(),
        handoff: String::new(),
        target: None,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn announced(phase: baton_proto::v1::DisruptionPhase) -> Vec<u8> {
        baton_proto::v1::DisruptionEvent {
            disruption_id: "analyzer-2".into(),
            phase: phase as i32,
            supplier: "lab".into(),
            kind: "lab".into(),
            reason: "chemistry analyzer down".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_796_464_200,
                nanos: 0,
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_disruption_is_a_notice_routed_by_its_supplier() {
        let subject = "baton.disruption.lab.analyzer-2";
        let started = announced(baton_proto::v1::DisruptionPhase::Started);
        let n = notice(subject, 7, &started, "https://board.test/")
            .expect("reads")
            .expect("a notice");
        assert_eq!((n.kind, n.supplier.as_str()), (Kind::Disruption, "lab"));
        assert_eq!(n.body["phase"], "started");
        assert_eq!(n.body["reason"], "chemistry analyzer down");
        assert_eq!(n.body["board"], "https://board.test/department/lab");
        let ended = announced(baton_proto::v1::DisruptionPhase::Ended);
        let n = notice(subject, 8, &ended, "https://board.test")
            .expect("reads")
            .expect("a notice");
        assert_eq!(n.body["phase"], "ended");
    }
}
