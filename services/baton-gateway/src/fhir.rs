//! FHIR R4/R5 `Task` in: the subset of a Task Baton reads (status, intent,
//! priority, code, requester, owner and times), what a Task's new state
//! means for its hand-off given what Baton knows of it, the Task as Baton
//! knows it, and `OperationOutcome`s. Pure: JSON in, events out. The Task's
//! other elements (`for`, `encounter`, `note`, `input`, ...) are not read,
//! so no patient reference or free text is ever kept.

use baton_proto::v1::{self, EventType, HandoffStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{mapping::Mapping, translate::Ids};

/// The elements of a Task Baton reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub resource_type: String,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
    pub status: String,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub code: Option<CodeableConcept>,
    #[serde(default)]
    pub requester: Option<Reference>,
    #[serde(default)]
    pub owner: Option<Reference>,
    #[serde(default)]
    pub authored_on: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub execution_period: Option<Period>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Identifier {
    #[serde(default)]
    pub system: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Coding {
    #[serde(default)]
    pub code: Option<String>,
}

/// An Organization or HealthcareService, named by its identifier.
#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    #[serde(default)]
    pub identifier: Option<Identifier>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Period {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

/// Why a Task change is refused: the HTTP status and what the
/// OperationOutcome says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression}: {diagnostics}")]
pub struct Refused {
    pub http: u16,
    /// FHIRPath of the element at fault (`Task.status`).
    pub expression: String,
    pub diagnostics: String,
}

impl Refused {
    fn new(http: u16, expression: &str, diagnostics: impl Into<String>) -> Refused {
        Refused {
            http,
            expression: expression.to_owned(),
            diagnostics: diagnostics.into(),
        }
    }

    /// The OperationOutcome that carries it.
    pub fn outcome(&self) -> Value {
        let code = match self.http {
            404 => "not-found",
            409 => "conflict",
            422 => "business-rule",
            _ => "invalid",
        };
        outcome("error", code, &self.diagnostics, Some(&self.expression))
    }
}

/// An OperationOutcome with one issue.
pub fn outcome(severity: &str, code: &str, diagnostics: &str, expression: Option<&str>) -> Value {
    let mut issue = json!({"severity": severity, "code": code, "diagnostics": diagnostics});
    if let Some(e) = expression {
        issue["expression"] = json!([e]);
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}

/// Where a Task's status puts its hand-off.
fn target(status: &str) -> Result<Option<HandoffStatus>, Refused> {
    use HandoffStatus as S;
    Ok(Some(match status {
        "draft" => return Ok(None),
        "requested" => S::Requested,
        "received" | "accepted" | "ready" => S::Acknowledged,
        "in-progress" => S::InProgress,
        "on-hold" => S::OnHold,
        "completed" => S::Completed,
        "rejected" | "failed" => S::Rejected,
        "cancelled" | "entered-in-error" => S::Cancelled,
        other => {
            return Err(Refused::new(
                400,
                "Task.status",
                format!("{other:?} is not a Task status"),
            ))
        }
    }))
}

/// The event that takes a hand-off from `from` to `to`, if one does.
fn step(from: HandoffStatus, to: HandoffStatus) -> Result<Option<EventType>, Refused> {
    use HandoffStatus as S;
    if from == to {
        return Ok(None);
    }
    let closed = matches!(from, S::Completed | S::Rejected | S::Cancelled);
    let event = match (from, to) {
        _ if closed => None,
        (S::Requested, S::Acknowledged) => Some(EventType::Acknowledged),
        (S::Requested | S::Acknowledged, S::InProgress) => Some(EventType::Started),
        (S::OnHold, S::InProgress) => Some(EventType::Resumed),
        (_, S::OnHold) => Some(EventType::OnHold),
        (_, S::Completed) => Some(EventType::Completed),
        (_, S::Rejected) => Some(EventType::Rejected),
        (_, S::Cancelled) => Some(EventType::Cancelled),
        _ => None,
    };
    event.map(Some).ok_or_else(|| {
        Refused::new(
            409,
            "Task.status",
            format!(
                "the hand-off is {} in Baton; it cannot become {}",
                name(from),
                name(to)
            ),
        )
    })
}

fn name(status: HandoffStatus) -> &'static str {
    status
        .as_str_name()
        .strip_prefix("HANDOFF_STATUS_")
        .unwrap_or("unknown")
}

/// What Baton knows of a Task's hand-off (from the query service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub status: HandoffStatus,
    pub supplier: String,
    pub priority: v1::Priority,
}

/// The hand-off id of a Task: its first identifier, through the keyed hash.
pub fn handoff_id(task: &Task, ids: &Ids) -> Result<String, Refused> {
    let identifier = task.identifier.first().ok_or_else(|| {
        Refused::new(
            400,
            "Task.identifier",
            "a Task needs an identifier (the order's number in its system) to be followed",
        )
    })?;
    Ok(ids.fhir(
        identifier.system.as_deref().unwrap_or(""),
        &identifier.value,
    ))
}

/// The events that bring the hand-off from `known` to what `task` says,
/// each at its time; `now` where the Task gives none.
pub fn plan(
    task: &Task,
    known: Option<&Known>,
    mapping: &Mapping,
    ids: &Ids,
    now: i64,
) -> Result<Vec<v1::HandoffEvent>, Refused> {
    if task.resource_type != "Task" {
        return Err(Refused::new(400, "resourceType", "a Task is expected"));
    }
    let handoff = handoff_id(task, ids)?;
    let Some(to) = target(&task.status)? else {
        return Ok(Vec::new());
    };
    let changed_at = time(task.last_modified.as_deref(), "Task.lastModified")?.unwrap_or(now);
    let mut events = Vec::new();
    let event = |event_type: EventType, at: i64| {
        // A request is one event whatever the Task's version, so a change
        // that reads a projector not yet showing the request repeats it
        // harmlessly (ingest answers it as a duplicate).
        let version = match event_type {
            EventType::Requested => "",
            _ => task.last_modified.as_deref().unwrap_or(""),
        };
        let mut e = v1::HandoffEvent {
            event_id: ids.fhir_event(&handoff, event_type.as_str_name(), version),
            handoff_id: handoff.clone(),
            r#type: event_type as i32,
            occurred_at: Some(baton_proto::convert::timestamp_to_proto(
                baton_domain::Timestamp(at),
            )),
            actor: "fhir".to_owned(),
            ..Default::default()
        };
        if event_type == EventType::Completed {
            if let Some(end) = task
                .execution_period
                .as_ref()
                .and_then(|p| p.end.as_deref())
            {
                if let Ok(Some(t)) = time(Some(end), "Task.executionPeriod.end") {
                    e.occurred_at = Some(baton_proto::convert::timestamp_to_proto(
                        baton_domain::Timestamp(t),
                    ));
                }
            }
        }
        e
    };
    let from = match known {
        Some(k) => {
            let supplier = owner(task, mapping)?;
            if let Some(supplier) = supplier.filter(|s| *s != k.supplier) {
                let mut reassigned = event(EventType::Reassigned, changed_at);
                reassigned.supplier = supplier;
                events.push(reassigned);
            }
            let priority = priority(task, mapping)?;
            if let Some(p) = priority.filter(|p| *p != k.priority) {
                let mut reprioritized = event(EventType::Reprioritized, changed_at);
                reprioritized.priority = p as i32;
                events.push(reprioritized);
            }
            k.status
        }
        None => {
            let authored =
                time(task.authored_on.as_deref(), "Task.authoredOn")?.unwrap_or(changed_at);
            let mut requested = event(EventType::Requested, authored);
            describe(&mut requested, task, mapping)?;
            events.push(requested);
            HandoffStatus::Requested
        }
    };
    if let Some(t) = step(from, to)? {
        events.push(event(t, changed_at));
    }
    Ok(events)
}

/// Kind, supplier, customer, priority and attributes of a new request.
fn describe(event: &mut v1::HandoffEvent, task: &Task, mapping: &Mapping) -> Result<(), Refused> {
    let code = task
        .code
        .as_ref()
        .and_then(|c| c.coding.iter().find_map(|c| c.code.clone()))
        .ok_or_else(|| {
            Refused::new(
                400,
                "Task.code",
                "a new Task needs a code (what is asked for)",
            )
        })?;
    let service = mapping.services.get(&code).ok_or_else(|| {
        Refused::new(
            422,
            "Task.code",
            format!("code {code:?} is not in the mapping"),
        )
    })?;
    let customer =
        department(task.requester.as_ref(), mapping, "Task.requester")?.ok_or_else(|| {
            Refused::new(
                400,
                "Task.requester",
                "a new Task needs a requester (the asking department)",
            )
        })?;
    event.kind = service.kind.clone();
    event.supplier = owner(task, mapping)?.unwrap_or_else(|| service.supplier.clone());
    event.customer = customer;
    event.priority = priority(task, mapping)?.unwrap_or(mapping.default_priority) as i32;
    event.attributes = service.attributes.clone().into_iter().collect();
    Ok(())
}

fn owner(task: &Task, mapping: &Mapping) -> Result<Option<String>, Refused> {
    department(task.owner.as_ref(), mapping, "Task.owner")
}

/// The department a reference's identifier names, by the mapping's `locations`.
fn department(
    reference: Option<&Reference>,
    mapping: &Mapping,
    at: &str,
) -> Result<Option<String>, Refused> {
    let Some(value) = reference
        .and_then(|r| r.identifier.as_ref())
        .map(|i| &i.value)
    else {
        return Ok(None);
    };
    mapping
        .locations
        .get(value)
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            Refused::new(
                422,
                at,
                format!("{value:?} is not in the mapping's locations"),
            )
        })
}

fn priority(task: &Task, _mapping: &Mapping) -> Result<Option<v1::Priority>, Refused> {
    Ok(match task.priority.as_deref() {
        None => None,
        Some("routine") => Some(v1::Priority::Routine),
        Some("urgent") => Some(v1::Priority::Urgent),
        Some("asap" | "stat") => Some(v1::Priority::Stat),
        Some(other) => {
            return Err(Refused::new(
                400,
                "Task.priority",
                format!("{other:?} is not routine, urgent, asap or stat"),
            ))
        }
    })
}

/// A FHIR dateTime or instant with its offset, in ms.
fn time(text: Option<&str>, at: &str) -> Result<Option<i64>, Refused> {
    let Some(text) = text else { return Ok(None) };
    text.parse::<jiff::Timestamp>()
        .map(|t| Some(t.as_millisecond()))
        .map_err(|_| {
            Refused::new(
                400,
                at,
                format!("{text:?} is not a date-time with its UTC offset"),
            )
        })
}

/// The Task as Baton knows its hand-off.
pub fn task_of(handoff: &v1::Handoff) -> Value {
    use HandoffStatus as S;
    let status = match HandoffStatus::try_from(handoff.status).unwrap_or(S::Unspecified) {
        S::Requested | S::Unspecified => "requested",
        S::Acknowledged => "accepted",
        S::InProgress => "in-progress",
        S::OnHold => "on-hold",
        S::Completed => "completed",
        S::Rejected => "rejected",
        S::Cancelled => "cancelled",
    };
    let priority = match v1::Priority::try_from(handoff.priority).unwrap_or(v1::Priority::Routine) {
        v1::Priority::Stat => "stat",
        v1::Priority::Urgent => "urgent",
        _ => "routine",
    };
    let rfc3339 = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok())
            .map(|t| t.to_string())
    };
    let last = handoff.events.last().and_then(|e| e.occurred_at.as_ref());
    let department =
        |id: &str| json!({"identifier": {"system": "urn:baton:department", "value": id}});
    json!({
        "resourceType": "Task",
        "id": handoff.handoff_id,
        "meta": {"versionId": handoff.version.to_string()},
        "status": status,
        "intent": "order",
        "priority": priority,
        "code": {"coding": [{"system": "urn:baton:kind", "code": handoff.kind}]},
        "requester": department(&handoff.customer),
        "owner": department(&handoff.supplier),
        "authoredOn": rfc3339(handoff.requested_at.as_ref()),
        "lastModified": rfc3339(last),
    })
}

/// What Baton knows of a hand-off, for [`plan`].
pub fn known(handoff: &v1::Handoff) -> Known {
    Known {
        status: HandoffStatus::try_from(handoff.status).unwrap_or(HandoffStatus::Requested),
        supplier: handoff.supplier.clone(),
        priority: v1::Priority::try_from(handoff.priority).unwrap_or(v1::Priority::Routine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping::from_json(include_str!("../../../deploy/gateway/hl7-lab.json")).expect("valid")
    }

    fn task(status: &str, modified: &str) -> Task {
        serde_json::from_value(json!({
            "resourceType": "Task",
            "identifier": [{"system": "urn:oe:orders", "value": "ORD-1"}],
            "status": status,
            "intent": "order",
            "priority": "stat",
            "code": {"coding": [{"system": "urn:lab", "code": "TROP"}]},
            "requester": {"identifier": {"value": "WARD5"}},
            "owner": {"identifier": {"value": "LAB"}},
            "authoredOn": "2026-12-05T10:00:00+01:00",
            "lastModified": modified,
            "for": {"reference": "Patient/should-never-be-read"}
        }))
        .expect("a Task")
    }

    fn known(status: HandoffStatus) -> Known {
        Known {
            status,
            supplier: "lab".into(),
            priority: v1::Priority::Stat,
        }
    }

    fn types(events: &[v1::HandoffEvent]) -> Vec<EventType> {
        events
            .iter()
            .map(|e| EventType::try_from(e.r#type).expect("a type"))
            .collect()
    }

    fn plan_of(t: &Task, k: Option<&Known>) -> Result<Vec<v1::HandoffEvent>, Refused> {
        plan(t, k, &mapping(), &Ids::new("salt"), 0)
    }

    #[test]
    fn a_new_task_opens_its_hand_off_and_catches_up_to_its_status() {
        let events = plan_of(&task("requested", "2026-12-05T10:00:00+01:00"), None).expect("plans");
        assert_eq!(types(&events), [EventType::Requested]);
        let r = &events[0];
        assert_eq!(
            (r.kind.as_str(), r.supplier.as_str(), r.customer.as_str()),
            ("lab", "lab", "ward-5")
        );
        assert_eq!(r.priority, v1::Priority::Stat as i32);
        assert_eq!(
            r.occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_461_200)
        );
        assert!(!format!("{events:?}").contains("should-never-be-read"));
        let events =
            plan_of(&task("in-progress", "2026-12-05T10:20:00+01:00"), None).expect("plans");
        assert_eq!(types(&events), [EventType::Requested, EventType::Started]);
        assert_eq!(
            events[1].occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_462_400)
        );
    }

    #[test]
    fn each_status_change_is_the_lifecycle_s_step() {
        use HandoffStatus as S;
        let cases = [
            (S::Requested, "accepted", vec![EventType::Acknowledged]),
            (S::Acknowledged, "in-progress", vec![EventType::Started]),
            (S::InProgress, "on-hold", vec![EventType::OnHold]),
            (S::OnHold, "in-progress", vec![EventType::Resumed]),
            (S::InProgress, "completed", vec![EventType::Completed]),
            (S::Requested, "rejected", vec![EventType::Rejected]),
            (S::Requested, "failed", vec![EventType::Rejected]),
            (
                S::Acknowledged,
                "entered-in-error",
                vec![EventType::Cancelled],
            ),
            (S::InProgress, "in-progress", vec![]),
        ];
        for (from, to, want) in cases {
            let events = plan_of(&task(to, "2026-12-05T11:00:00Z"), Some(&known(from))).expect(to);
            assert_eq!(types(&events), want, "{from:?} -> {to}");
        }
        for (from, to) in [
            (S::Completed, "in-progress"),
            (S::InProgress, "requested"),
            (S::Cancelled, "completed"),
        ] {
            let refused =
                plan_of(&task(to, "2026-12-05T11:00:00Z"), Some(&known(from))).expect_err(to);
            assert_eq!(
                (refused.http, refused.expression.as_str()),
                (409, "Task.status"),
                "{from:?} -> {to}"
            );
        }
    }

    #[test]
    fn an_owner_or_priority_change_comes_before_the_status_step() {
        let mut t = task("in-progress", "2026-12-05T11:00:00Z");
        t.owner = Some(Reference {
            identifier: Some(Identifier {
                system: None,
                value: "BLOODBANK".into(),
            }),
        });
        t.priority = Some("urgent".into());
        let events = plan_of(&t, Some(&known(HandoffStatus::Acknowledged))).expect("plans");
        assert_eq!(
            types(&events),
            [
                EventType::Reassigned,
                EventType::Reprioritized,
                EventType::Started
            ]
        );
        assert_eq!(events[0].supplier, "blood-bank");
        assert_eq!(events[1].priority, v1::Priority::Urgent as i32);
    }

    #[test]
    fn a_task_sent_twice_is_the_same_events() {
        let t = task("in-progress", "2026-12-05T11:00:00Z");
        assert_eq!(plan_of(&t, None), plan_of(&t, None));
        let later = task("in-progress", "2026-12-05T11:05:00Z");
        let (a, b) = (
            plan_of(&t, None).expect("a"),
            plan_of(&later, None).expect("b"),
        );
        assert_eq!(a[0].event_id, b[0].event_id, "the request is one event");
        assert_ne!(
            a[1].event_id, b[1].event_id,
            "another version, another change"
        );
    }

    #[test]
    fn what_cannot_be_placed_is_refused_naming_the_element() {
        let mut t = task("requested", "2026-12-05T11:00:00Z");
        t.status = "finished".into();
        assert_eq!(
            plan_of(&t, None).expect_err("status").expression,
            "Task.status"
        );
        let mut t = task("requested", "2026-12-05T11:00:00Z");
        t.identifier.clear();
        assert_eq!(
            plan_of(&t, None).expect_err("id").expression,
            "Task.identifier"
        );
        let mut t = task("requested", "2026-12-05T11:00:00Z");
        t.code = Some(CodeableConcept {
            coding: vec![Coding {
                code: Some("XRAY".into()),
            }],
        });
        let e = plan_of(&t, None).expect_err("code");
        assert_eq!((e.http, e.expression.as_str()), (422, "Task.code"));
        let t = task("requested", "yesterday");
        assert_eq!(
            plan_of(&t, None).expect_err("time").expression,
            "Task.lastModified"
        );
        let outcome = e.outcome();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["expression"][0], "Task.code");
    }
}
