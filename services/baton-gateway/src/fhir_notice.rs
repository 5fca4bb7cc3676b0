//! Reading a FHIR topic-based subscription notification: R4B/R5's Bundle
//! led by a `SubscriptionStatus`, or the R4 backport's led by a
//! `Parameters`. What Baton takes from it: which subscription, the event
//! numbers it carries (or, in a heartbeat, how many events there have been),
//! the Tasks of a full-resource payload, and the focus references of an
//! id-only one. Pure.

use serde_json::Value;

use crate::fhir::{Refused, Task};

/// One notification, as Baton reads it.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    /// `Subscription/lab-orders`.
    pub subscription: String,
    /// The event numbers of its events.
    pub numbers: Vec<u64>,
    /// `eventsSinceSubscriptionStart`, when given.
    pub since_start: Option<u64>,
    pub tasks: Vec<Task>,
    /// The focus of each event, as referenced.
    pub focus: Vec<String>,
}

fn refused(expression: &str, diagnostics: impl Into<String>) -> Refused {
    Refused {
        http: 400,
        expression: expression.to_owned(),
        diagnostics: diagnostics.into(),
    }
}

/// A count FHIR writes as a string (integer64) or a number.
fn count(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Reads a notification Bundle.
pub fn read(bundle: &Value) -> Result<Notice, Refused> {
    if bundle["resourceType"] != "Bundle" {
        return Err(refused("resourceType", "a Bundle is expected"));
    }
    let entries = bundle["entry"]
        .as_array()
        .ok_or_else(|| refused("Bundle.entry", "the notification has no entries"))?;
    let first = entries
        .first()
        .map(|e| &e["resource"])
        .ok_or_else(|| refused("Bundle.entry", "the notification has no entries"))?;
    let mut notice = match first["resourceType"].as_str() {
        Some("SubscriptionStatus") => status(first),
        Some("Parameters") => parameters(first),
        _ => return Err(refused(
            "Bundle.entry[0]",
            "a notification starts with a SubscriptionStatus (R4B, R5) or Parameters (R4 backport)",
        )),
    };
    if notice.subscription.is_empty() {
        return Err(refused(
            "Bundle.entry[0]",
            "the notification names no subscription",
        ));
    }
    for (i, entry) in entries.iter().enumerate().skip(1) {
        if entry["resource"]["resourceType"] == "Task" {
            let task = serde_json::from_value(entry["resource"].clone())
                .map_err(|e| refused(&format!("Bundle.entry[{i}]"), format!("not a Task: {e}")))?;
            notice.tasks.push(task);
        }
    }
    Ok(notice)
}

/// R4B/R5.
fn status(resource: &Value) -> Notice {
    let events = resource["notificationEvent"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Notice {
        subscription: resource["subscription"]["reference"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        numbers: events
            .iter()
            .filter_map(|e| count(&e["eventNumber"]))
            .collect(),
        since_start: count(&resource["eventsSinceSubscriptionStart"]),
        focus: events
            .iter()
            .filter_map(|e| e["focus"]["reference"].as_str().map(str::to_owned))
            .collect(),
        ..Notice::default()
    }
}

/// The R4 backport's Parameters.
fn parameters(resource: &Value) -> Notice {
    let params = resource["parameter"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    fn named<'a>(params: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> {
        params.iter().filter(move |p| p["name"] == name)
    }
    let value = |p: &Value| {
        [
            "valueString",
            "valueUnsignedInt",
            "valueInteger64",
            "valueInteger",
            "valueDecimal",
        ]
        .iter()
        .find_map(|k| count(&p[*k]))
    };
    let mut notice = Notice {
        subscription: named(&params, "subscription")
            .find_map(|p| p["valueReference"]["reference"].as_str())
            .unwrap_or("")
            .to_owned(),
        since_start: named(&params, "events-since-subscription-start").find_map(value),
        ..Notice::default()
    };
    for event in named(&params, "notification-event") {
        let parts = event["part"].as_array().cloned().unwrap_or_default();
        for part in &parts {
            match part["name"].as_str() {
                Some("event-number") => notice.numbers.extend(value(part)),
                Some("focus") => notice.focus.extend(
                    part["valueReference"]["reference"]
                        .as_str()
                        .map(str::to_owned),
                ),
                _ => {}
            }
        }
    }
    notice
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str) -> Value {
        json!({"resourceType": "Task", "identifier": [{"system": "urn:oe", "value": id}], "status": "requested", "intent": "order"})
    }

    #[test]
    fn r5_and_r4b_notifications_are_read() {
        let bundle = json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "type": "event-notification",
              "eventsSinceSubscriptionStart": "7", "subscription": {"reference": "Subscription/lab"},
              "notificationEvent": [{"eventNumber": "6", "focus": {"reference": "Task/a"}}, {"eventNumber": 7, "focus": {"reference": "Task/b"}}]}},
            {"fullUrl": "Task/a", "resource": task("a")},
            {"fullUrl": "Task/b", "resource": task("b")}
        ]});
        let n = read(&bundle).expect("reads");
        assert_eq!(n.subscription, "Subscription/lab");
        assert_eq!(n.numbers, [6, 7]);
        assert_eq!(n.since_start, Some(7));
        assert_eq!(n.tasks.len(), 2);
        assert_eq!(n.focus, ["Task/a", "Task/b"]);
    }

    #[test]
    fn the_r4_backport_is_read() {
        let bundle = json!({"resourceType": "Bundle", "type": "history", "entry": [
            {"resource": {"resourceType": "Parameters", "parameter": [
                {"name": "subscription", "valueReference": {"reference": "Subscription/lab"}},
                {"name": "events-since-subscription-start", "valueString": "3"},
                {"name": "notification-event", "part": [
                    {"name": "event-number", "valueString": "3"},
                    {"name": "focus", "valueReference": {"reference": "Task/c"}}]}]}},
            {"resource": task("c")}
        ]});
        let n = read(&bundle).expect("reads");
        assert_eq!(
            (n.subscription.as_str(), n.numbers.as_slice(), n.since_start),
            ("Subscription/lab", &[3][..], Some(3))
        );
        assert_eq!(n.tasks.len(), 1);
    }

    #[test]
    fn what_is_not_a_notification_is_refused() {
        assert!(read(&json!({"resourceType": "Task"})).is_err());
        assert!(read(&json!({"resourceType": "Bundle", "entry": []})).is_err());
        let no_subscription = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "SubscriptionStatus"}}]});
        assert!(read(&no_subscription).is_err());
    }
}
