//! `/events`: server-sent events for the board.
//!
//! Each stream forwards, as JSON, the signals this projector's own views
//! hold ([`crate::relay`]): never a message read off NATS, so one someone
//! else published on Baton's subjects never reaches the screen. A stream
//! that falls more than [`crate::relay::CAPACITY`] signals behind is
//! closed (the browser reconnects and reloads what it shows).
//!
//! | event | when | data |
//! |---|---|---|
//! | `hello` | the subscriptions are in place | `{"current", "now"}` |
//! | `breach` | a breach was announced | [`breach_json`] |
//! | `correction` | an announced breach turned out to be a kept promise | [`breach_json`] |
//! | `warning` | a clock passed its warning share | [`warning_json`] |
//! | `disruption` | a disruption started or ended | [`disruption_json`] |
//! | `changed` | the views committed a batch (at most one per [`CHANGE_COALESCE`](super::CHANGE_COALESCE)) | `{"current"}` |
//!
//! A stream ends when the projector shuts down; comments keep idle
//! connections open through proxies.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use baton_proto::{
    convert::{priority_from_proto, timestamp_from_proto},
    v1,
};
use futures::{stream, Stream, StreamExt};
use serde_json::{json, Value};
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};

use super::{BoardError, BoardState, CHANGE_COALESCE};
use crate::relay::Relayed;

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn events(
    State(state): State<Arc<BoardState>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, BoardError> {
    // Subscribed before the browser hears `hello`, so nothing relayed after
    // `hello` can slip past.
    let relayed = BroadcastStream::new(state.shared.relay.subscribe());
    let hello = {
        let data = json!({"current": state.shared.is_current(), "now": baton_runtime::now().0});
        stream::once(async move { event("hello", &data) })
    };
    let announced = relayed
        .take_while(|item| {
            if let Err(BroadcastStreamRecvError::Lagged(missed)) = item {
                tracing::info!(missed, "board: a stream fell behind and is closed");
            }
            std::future::ready(item.is_ok())
        })
        .filter_map(|item| std::future::ready(item.ok().and_then(|s| board_event(&s))));
    let changes = stream::unfold(
        (state.shared.subscribe_changes(), state.clone()),
        |(mut changes, state)| async move {
            changes.changed().await.ok()?;
            tokio::time::sleep(CHANGE_COALESCE).await;
            changes.borrow_and_update();
            let data = json!({"current": state.shared.is_current()});
            Some((event("changed", &data), (changes, state)))
        },
    );
    // A rebuild finishing is a change too, even if no batch follows it.
    let became_current = {
        let state = state.clone();
        let was_current = state.shared.is_current();
        stream::once(async move {
            state.shared.wait_current().await;
            (!was_current).then(|| event("changed", &json!({"current": true})))
        })
        .filter_map(|e| async move { e })
    };
    let stream = hello
        .chain(stream::select(
            announced,
            stream::select(changes, became_current),
        ))
        .map(Ok)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

fn event(name: &str, data: &Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// The board event for a relayed signal.
pub fn board_event(signal: &Relayed) -> Option<Event> {
    let (name, data) = match signal {
        Relayed::Breach(b) => ("breach", breach_json(b)),
        Relayed::Correction(b) => ("correction", breach_json(b)),
        Relayed::Warning(w) => ("warning", warning_json(w)),
        Relayed::Disruption(d) => ("disruption", disruption_json(d)),
        Relayed::Acknowledgement(b) => ("acknowledgement", breach_json(b)),
    };
    Some(event(name, &data))
}

fn millis(field: &str, at: Option<&prost_types::Timestamp>) -> Option<i64> {
    at.and_then(|t| timestamp_from_proto(field, t).ok())
        .map(|t| t.0)
}

fn priority(value: i32) -> &'static str {
    match priority_from_proto(value) {
        Ok(Some(p)) => p.name(),
        _ => "unspecified",
    }
}

fn duration_millis(d: Option<&prost_types::Duration>) -> Option<u128> {
    d.map(|d| baton_proto::convert::duration_from_proto(d).as_millis())
}

/// A breach or correction: `key` is `<policy>/<handoff>/<cycle>`, as the
/// board's rows carry it; instants in epoch milliseconds.
pub fn breach_json(b: &v1::Breach) -> Value {
    json!({
        "key": format!("{}/{}/{}", b.policy_id, b.handoff_id, b.cycle),
        "handoff_id": b.handoff_id,
        "policy_id": b.policy_id,
        "supplier": b.supplier,
        "customer": b.customer,
        "kind": b.kind,
        "priority": priority(b.priority),
        "cycle": b.cycle,
        "deadline": millis("deadline", b.deadline.as_ref()),
        "stopped_at": millis("stopped_at", b.stopped_at.as_ref()),
        "open": b.open,
        "corrected": b.corrected,
        "target_ms": duration_millis(b.target.as_ref()),
        "escalate_to": b.escalate_to,
        "acknowledged_by": b.acknowledged_by,
    })
}

pub fn warning_json(w: &v1::SlaWarning) -> Value {
    json!({
        "key": format!("{}/{}/{}", w.policy_id, w.handoff_id, w.cycle),
        "handoff_id": w.handoff_id,
        "policy_id": w.policy_id,
        "supplier": w.supplier,
        "customer": w.customer,
        "kind": w.kind,
        "priority": priority(w.priority),
        "cycle": w.cycle,
        "warned_at": millis("warned_at", w.warned_at.as_ref()),
        "deadline": millis("deadline", w.deadline.as_ref()),
        "target_ms": duration_millis(w.target.as_ref()),
    })
}

pub fn disruption_json(d: &v1::DisruptionEvent) -> Value {
    let phase = match v1::DisruptionPhase::try_from(d.phase) {
        Ok(v1::DisruptionPhase::Started) => "started",
        Ok(v1::DisruptionPhase::Ended) => "ended",
        _ => "unspecified",
    };
    json!({
        "disruption_id": d.disruption_id,
        "phase": phase,
        "supplier": d.supplier,
        "kind": d.kind,
        "reason": d.reason,
        "occurred_at": millis("occurred_at", d.occurred_at.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breach_becomes_json_with_the_rows_key() {
        let b = v1::Breach {
            handoff_id: "r-1".into(),
            policy_id: "repair-response".into(),
            supplier: "engineering".into(),
            customer: "ward-5".into(),
            kind: "repair".into(),
            priority: v1::Priority::Stat as i32,
            cycle: 1,
            deadline: Some(prost_types::Timestamp {
                seconds: 10,
                nanos: 5_000_000,
            }),
            open: true,
            ..Default::default()
        };
        let j = breach_json(&b);
        assert_eq!(j["key"], "repair-response/r-1/1");
        assert_eq!(j["priority"], "stat");
        assert_eq!(j["deadline"], 10_005);
        assert_eq!(j["stopped_at"], Value::Null);
    }

    #[test]
    fn each_relayed_signal_becomes_its_board_event() {
        let named = |signal: Relayed| {
            let rendered = format!("{:?}", board_event(&signal).expect("an event"));
            ["breach", "correction", "warning", "disruption"]
                .into_iter()
                .find(|name| rendered.contains(&format!("event: {name}")))
        };
        assert_eq!(
            named(Relayed::Breach(v1::Breach::default())),
            Some("breach")
        );
        assert_eq!(
            named(Relayed::Correction(v1::Breach::default())),
            Some("correction")
        );
        assert_eq!(
            named(Relayed::Warning(v1::SlaWarning::default())),
            Some("warning")
        );
        assert_eq!(
            named(Relayed::Disruption(v1::DisruptionEvent::default())),
            Some("disruption")
        );
    }
}
