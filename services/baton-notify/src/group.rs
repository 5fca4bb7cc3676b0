//! Signals a route's policy holds back, collected until the group is
//! delivered as one message. Each held signal waits, unacknowledged, for
//! its group's delivery, so a crash before then delivers it again (in
//! whatever group it then joins: the grouped message's delivery id names
//! its members, so a receiver can tell a repeat of the same group from a
//! new one). Here: the open groups, and the grouped message's body and id
//! (pure). The delivering is [`crate::deliver`]'s.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use baton_runtime::otel::opentelemetry::{
    trace::{SpanContext, TraceContextExt as _},
    Context,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::{notice::Notice, table::Table};

/// At most this many signals are listed in one grouped message; all are
/// counted.
pub const MAX_LISTED: usize = 500;

/// What a held signal learns when its group was delivered (or parked), or
/// why it could not be.
pub type Outcome = Result<(), String>;

/// One route's group while it collects.
#[derive(Debug)]
pub struct Open {
    /// The table the group's first signal was routed under: its route
    /// and channels deliver the group.
    pub table: Arc<Table>,
    pub members: Vec<Notice>,
    pub opened_at: jiff::Timestamp,
    pub waiters: Vec<oneshot::Sender<Outcome>>,
    /// The trace context of each member that was handled in one: the
    /// grouped delivery's span links to them.
    pub traces: Vec<SpanContext>,
}

/// The open groups, one per route.
#[derive(Debug, Clone, Default)]
pub struct Groups(Arc<Mutex<HashMap<String, Open>>>);

impl Groups {
    /// Adds `notice` to `route`'s group (opening it under `table` if none
    /// is open): the answer arrives when the group was delivered. `true`
    /// if this opened the group, whose delivery the caller then schedules.
    pub fn join(
        &self,
        table: &Arc<Table>,
        route: &str,
        notice: &Notice,
        now: jiff::Timestamp,
    ) -> (oneshot::Receiver<Outcome>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let opened = !open.contains_key(route);
        let group = open.entry(route.to_owned()).or_insert_with(|| Open {
            table: table.clone(),
            members: Vec::new(),
            opened_at: now,
            waiters: Vec::new(),
            traces: Vec::new(),
        });
        group.members.push(notice.clone());
        group.waiters.push(tx);
        let traced = Context::current().span().span_context().clone();
        if traced.is_valid() {
            group.traces.push(traced);
        }
        (rx, opened)
    }

    /// Closes `route`'s group for delivery; what joins later opens the next.
    pub fn take(&self, route: &str) -> Option<Open> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(route)
    }
}

/// The grouped message: how many of each signal, and the list.
pub fn body(route: &str, members: &[Notice], opened_at: jiff::Timestamp) -> Value {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in members {
        *counts.entry(n.kind.name()).or_default() += 1;
    }
    let listed: Vec<&Value> = members.iter().take(MAX_LISTED).map(|n| &n.body).collect();
    json!({
        "signal": "group",
        "route": route,
        "count": members.len(),
        "counts": counts,
        "since": opened_at.to_string(),
        "signals": listed,
        "not_listed": members.len().saturating_sub(MAX_LISTED),
    })
}

/// The grouped message's delivery id: its route, channel and members, so
/// the same group sent again has the same id and a different one another.
pub fn delivery_id(route: &str, channel: &str, members: &[Notice]) -> String {
    let mut signals: Vec<(&str, u64)> = members
        .iter()
        .map(|n| (n.subject.as_str(), n.sequence))
        .collect();
    signals.sort_unstable();
    let mut text = format!("group|{route}|{channel}");
    for (subject, sequence) in signals {
        text.push_str(&format!("|{subject}#{sequence}"));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::Kind;

    fn warning(sequence: u64) -> Notice {
        Notice {
            kind: Kind::Warning,
            subject: format!("baton.sla.warning.lab-turnaround.lab.ward-5.order-{sequence}"),
            sequence,
            policy: "lab-turnaround".into(),
            supplier: "lab".into(),
            customer: "ward-5".into(),
            priority: "routine".into(),
            handoff: format!("order-{sequence}"),
            target: None,
            body: json!({"signal": "warning", "handoff": format!("order-{sequence}")}),
        }
    }

    #[test]
    fn a_group_counts_every_member_and_lists_at_most_its_limit() {
        let mut members: Vec<Notice> = (1..=600).map(warning).collect();
        members[0].kind = Kind::Disruption;
        let b = body("lab-desk", &members, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(b["count"], 600);
        assert_eq!(b["counts"]["warning"], 599);
        assert_eq!(b["counts"]["disruption"], 1);
        assert_eq!(b["signals"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(b["not_listed"], 100);
        assert_eq!(b["signals"][1]["handoff"], "order-2");
    }

    #[test]
    fn a_group_s_id_names_its_members_not_their_order() {
        let a: Vec<Notice> = (1..=3).map(warning).collect();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(delivery_id("r", "c", &a), delivery_id("r", "c", &b));
        assert_ne!(delivery_id("r", "c", &a), delivery_id("r", "c", &a[..2]));
        assert_ne!(delivery_id("r", "c", &a), delivery_id("r", "d", &a));
    }
}
