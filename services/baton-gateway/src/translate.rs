//! From a parsed HL7 message to the hand-off events it tells, by the
//! mapping. Pure: the same message, mapping and salt always give the same
//! events with the same ids, so a resend after a lost ACK appends nothing
//! new.

use baton_proto::v1::{self, EventType};
use ring::hmac;

use crate::{
    hl7::{self, Message, Order},
    mapping::Mapping,
};

/// What a message asks of Baton.
#[derive(Debug, Clone, PartialEq)]
pub enum Translation {
    /// These events, appended in order.
    Events(Vec<Told>),
    /// Nothing to append (a status the mapping does not name);
    /// acknowledged, and counted as `reason`.
    Nothing { reason: &'static str },
}

/// One event a message tells.
#[derive(Debug, Clone, PartialEq)]
pub struct Told {
    pub event: v1::HandoffEvent,
    /// Told again by later messages about the order (a specimen's arrival
    /// repeats on each result): if the hand-off has moved past it, ingest
    /// refusing it out of order is no fault of the message.
    pub may_be_past: bool,
}

/// Why a message Baton can read is refused (answered AE, or AR for a
/// message type it does not take).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refusal {
    /// Where in the message: `OBR-4`, `ORC-13`, `MSH-9`.
    pub field: String,
    pub reason: String,
    /// The HL7 error code (table 0357): 103 a value not in the table, 101 a
    /// required field missing, 200 an unsupported message type, 207 other.
    pub code: u16,
}

impl Refusal {
    fn new(field: impl Into<String>, code: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            field: field.into(),
            reason: reason.into(),
            code,
        }
    }

    /// The message type itself is not one Baton takes (AR, not AE).
    pub fn is_unsupported(&self) -> bool {
        self.code == 200
    }
}

/// How the gateway makes ids from the sender's numbers: a keyed hash, so
/// ids are stable for a sender's resends but reveal nothing of the order
/// numbers, and pass the patient-data screen.
#[derive(Debug, Clone)]
pub struct Ids(hmac::Key);

impl Ids {
    pub fn new(salt: &str) -> Ids {
        Ids(hmac::Key::new(hmac::HMAC_SHA256, salt.as_bytes()))
    }

    fn id(&self, what: &str, parts: &[&str]) -> String {
        self.keyed("hl7", what, parts)
    }

    /// The hand-off id of a FHIR Task with this business identifier.
    pub fn fhir(&self, system: &str, value: &str) -> String {
        self.keyed("fhir", "task", &[system, value])
    }

    /// The id of a Task change's event: the hand-off, the event type and
    /// the Task's version (`lastModified`), so a PUT sent twice is one event.
    pub fn fhir_event(&self, handoff: &str, event_type: &str, version: &str) -> String {
        self.keyed("fhir", "event", &[handoff, event_type, version])
    }

    fn keyed(&self, prefix: &str, what: &str, parts: &[&str]) -> String {
        let tag = hmac::sign(&self.0, format!("{what}|{}", parts.join("|")).as_bytes());
        let mut hex: String = tag.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // A hex word with a letter is opaque to the patient-data screen;
        // one of 24 digits only is not (about one id in 80,000).
        if !hex.bytes().any(|b| b.is_ascii_alphabetic()) {
            hex.replace_range(..1, "a");
        }
        format!("{prefix}-{hex}")
    }
}

/// The events `message` tells, by `mapping`; times without an offset are
/// read in `zone`.
pub fn translate(
    message: &Message,
    mapping: &Mapping,
    ids: &Ids,
    zone: &jiff::tz::TimeZone,
) -> Result<Translation, Refusal> {
    let cx = Context::of(message, mapping, ids, zone)?;
    let orders = message.orders();
    if orders.is_empty() {
        return Err(Refusal::new(
            "ORC",
            101,
            "the message has no order (ORC or OBR)",
        ));
    }
    let mut events = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        events.extend(cx.tell(i, order)?);
    }
    if events.is_empty() {
        return Ok(Translation::Nothing {
            reason: "status not mapped",
        });
    }
    Ok(Translation::Events(events))
}

/// What every order of one message is read with.
struct Context<'a> {
    mapping: &'a Mapping,
    ids: &'a Ids,
    zone: &'a jiff::tz::TimeZone,
    /// ORU^R01 (else an order message).
    is_result: bool,
    /// MSH-3, the sending application.
    sender: String,
    /// MSH-10, its message control id.
    control: String,
    /// MSH-7, the time of last resort.
    sent_at: Option<String>,
}

impl<'a> Context<'a> {
    fn of(
        message: &Message,
        mapping: &'a Mapping,
        ids: &'a Ids,
        zone: &'a jiff::tz::TimeZone,
    ) -> Result<Context<'a>, Refusal> {
        let (kind, trigger) = message
            .message_type()
            .map_err(|e| Refusal::new("MSH-9", 101, e.to_string()))?;
        let is_result = match (kind.as_str(), trigger.as_str()) {
            ("ORM", "O01") | ("OML", "O21") => false,
            ("ORU", "R01") => true,
            _ => {
                return Err(Refusal::new(
                    "MSH-9",
                    200,
                    format!(
                        "{kind}^{trigger} is not a message Baton takes (ORM^O01, OML^O21, ORU^R01)"
                    ),
                ))
            }
        };
        Ok(Context {
            mapping,
            ids,
            zone,
            is_result,
            sender: message
                .value("MSH", 3, 1)
                .ok_or_else(|| Refusal::new("MSH-3", 101, "the sending application is missing"))?,
            control: message
                .value("MSH", 10, 1)
                .ok_or_else(|| Refusal::new("MSH-10", 101, "the message control id is missing"))?,
            sent_at: message.value("MSH", 7, 1),
        })
    }

    /// The events the `i`th order tells: its status or result, and the
    /// specimen's arrival where the mapping names an event for it.
    fn tell(&self, i: usize, order: &Order<'_>) -> Result<Vec<Told>, Refusal> {
        let event_type = if self.is_result {
            result_meaning(order, self.mapping)
        } else {
            order_meaning(order, self.mapping)?
        };
        let received = match self.mapping.received.filter(|r| Some(*r) != event_type) {
            Some(t) => received(order, t, self.ids, &self.sender, self.zone)?,
            None => None,
        };
        let Some(event_type) = event_type else {
            return Ok(received.into_iter().collect());
        };
        let places: &[(&str, usize)] = if self.is_result {
            &[("OBR", 22), ("ORC", 9)]
        } else {
            &[("ORC", 9), ("OBR", 7)]
        };
        let occurred_at = when(order, places, self.sent_at.as_deref(), self.zone)?;
        let mut event = v1::HandoffEvent {
            event_id: self
                .ids
                .id("event", &[&self.sender, &self.control, &i.to_string()]),
            handoff_id: handoff_id(order, self.ids)?,
            r#type: event_type as i32,
            occurred_at: Some(baton_proto::convert::timestamp_to_proto(
                baton_domain::Timestamp(occurred_at),
            )),
            actor: self.sender.clone(),
            ..Default::default()
        };
        let own = |event| Told {
            event,
            may_be_past: false,
        };
        let told = if event_type == EventType::Requested {
            describe_request(&mut event, order, self.mapping)?;
            [Some(own(event)), received]
        } else {
            [received, Some(own(event))]
        };
        Ok(told.into_iter().flatten().collect())
    }
}

/// The specimen's arrival in the lab (SPM-18, else OBR-14) as `event_type`.
/// Its id is the hand-off's and the time's, so every message repeating
/// it tells the one event again, which ingest takes as a resend.
fn received(
    order: &Order<'_>,
    event_type: EventType,
    ids: &Ids,
    sender: &str,
    zone: &jiff::tz::TimeZone,
) -> Result<Option<Told>, Refusal> {
    let Some((field, text)) = order.first_of(&[("SPM", 18), ("OBR", 14)]) else {
        return Ok(None);
    };
    let at = hl7::timestamp(&text, zone).ok_or_else(|| not_a_time(&field))?;
    let handoff_id = handoff_id(order, ids)?;
    let event = v1::HandoffEvent {
        event_id: ids.id("received", &[&handoff_id, &at.to_string()]),
        handoff_id,
        r#type: event_type as i32,
        occurred_at: Some(baton_proto::convert::timestamp_to_proto(
            baton_domain::Timestamp(at),
        )),
        actor: sender.to_owned(),
        ..Default::default()
    };
    Ok(Some(Told {
        event,
        may_be_past: true,
    }))
}

fn not_a_time(field: &str) -> Refusal {
    Refusal::new(
        field,
        102,
        "not an HL7 date/time (YYYYMMDDHHMM[SS][+/-ZZZZ])",
    )
}

/// ORC-1 with ORC-5 (`SC:IP`) if the mapping names the pair, else ORC-1.
fn order_meaning(order: &Order<'_>, mapping: &Mapping) -> Result<Option<EventType>, Refusal> {
    let control = order
        .value("ORC", 1, 1)
        .ok_or_else(|| Refusal::new("ORC-1", 101, "the order control code is missing"))?;
    let status = order.value("ORC", 5, 1).unwrap_or_default();
    Ok(mapping
        .order_control
        .get(&format!("{control}:{status}"))
        .or_else(|| mapping.order_control.get(&control))
        .copied())
}

fn result_meaning(order: &Order<'_>, mapping: &Mapping) -> Option<EventType> {
    let status = order.value("OBR", 25, 1)?;
    mapping.result_status.get(&status).copied()
}

/// The first of `places` holding a time, else MSH-7.
fn when(
    order: &Order<'_>,
    places: &[(&str, usize)],
    sent_at: Option<&str>,
    zone: &jiff::tz::TimeZone,
) -> Result<i64, Refusal> {
    let (field, text) = order
        .first_of(places)
        .or_else(|| sent_at.map(|t| ("MSH-7".to_owned(), t.to_owned())))
        .ok_or_else(|| Refusal::new("MSH-7", 101, "no time for the event"))?;
    hl7::timestamp(&text, zone).ok_or_else(|| not_a_time(&field))
}

/// The hand-off's id: the placer order number with its namespace (ORC-2,
/// else OBR-2), else the filler's (ORC-3, OBR-3), through the keyed hash.
fn handoff_id(order: &Order<'_>, ids: &Ids) -> Result<String, Refusal> {
    for (role, places) in [
        ("placer", [("ORC", 2), ("OBR", 2)]),
        ("filler", [("ORC", 3), ("OBR", 3)]),
    ] {
        for (segment, field) in places {
            if let Some(number) = order.value(segment, field, 1) {
                let namespace = order.value(segment, field, 2).unwrap_or_default();
                return Ok(ids.id(role, &[&number, &namespace]));
            }
        }
    }
    Err(Refusal::new(
        "ORC-2",
        101,
        "no placer or filler order number",
    ))
}

/// What a new request needs: kind, supplier and attributes from OBR-4,
/// the customer from ORC-13, the priority from ORC-7.6 or TQ1-9.
fn describe_request(
    event: &mut v1::HandoffEvent,
    order: &Order<'_>,
    mapping: &Mapping,
) -> Result<(), Refusal> {
    let code = order
        .value("OBR", 4, 1)
        .ok_or_else(|| Refusal::new("OBR-4", 101, "the ordered service is missing"))?;
    let service = mapping.services.get(&code).ok_or_else(|| {
        Refusal::new(
            "OBR-4",
            103,
            format!("service {code:?} is not in the mapping"),
        )
    })?;
    let location = order
        .value("ORC", 13, 1)
        .ok_or_else(|| Refusal::new("ORC-13", 101, "the ordering location is missing"))?;
    let customer = mapping.locations.get(&location).ok_or_else(|| {
        Refusal::new(
            "ORC-13",
            103,
            format!("location {location:?} is not in the mapping"),
        )
    })?;
    let priority = match order
        .value("TQ1", 9, 1)
        .or_else(|| order.value("ORC", 7, 6))
    {
        None => mapping.default_priority,
        Some(p) => *mapping.priorities.get(&p).ok_or_else(|| {
            Refusal::new(
                "TQ1-9",
                103,
                format!("priority {p:?} is not in the mapping"),
            )
        })?,
    };
    event.kind = service.kind.clone();
    event.supplier = service.supplier.clone();
    event.customer = customer.clone();
    event.priority = priority as i32;
    event.attributes = service.attributes.clone().into_iter().collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        Mapping::from_json(include_str!("../../../deploy/gateway/hl7-lab.json")).expect("valid")
    }

    fn order(control: &str, extra_orc5: &str, code: &str, location: &str) -> String {
        format!(
            "MSH|^~\\&|OE|NORTH|LIS|NORTH|202612051030+0100||ORM^O01|C-{control}-1|P|2.5\r\
PID|1||PAT123^^^NORTH^MR||ROE^RICHARD\r\
ORC|{control}|PL-1^OE|||{extra_orc5}||^^^^^S||202612051028+0100||||{location}\r\
OBR|1|PL-1^OE||{code}^Troponin\r"
        )
    }

    fn translate_text(text: &str) -> Result<Translation, Refusal> {
        let m = Message::parse(text.as_bytes()).expect("parses");
        translate(&m, &mapping(), &Ids::new("salt"), &jiff::tz::TimeZone::UTC)
    }

    fn told(text: &str) -> Vec<Told> {
        match translate_text(text).expect("translates") {
            Translation::Events(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn events(text: &str) -> Vec<v1::HandoffEvent> {
        told(text).into_iter().map(|t| t.event).collect()
    }

    /// A segment with `fields` (1-based) set and the rest empty.
    fn segment(name: &str, fields: &[(usize, &str)]) -> String {
        let last = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
        let mut values = vec![""; last];
        for (n, v) in fields {
            values[n - 1] = v;
        }
        format!("{name}|{}\r", values.join("|"))
    }

    /// An ORU^R01 for order PL-1 with OBR-25 `status`, and `extra` fields
    /// on its OBR, then `after` (an SPM).
    fn result_with(status: &str, extra: &[(usize, &str)], after: &str) -> String {
        let mut obr = vec![
            (1, "1"),
            (2, "PL-1^OE"),
            (3, "FL-9^LIS"),
            (4, "TROP"),
            (22, "202612051129+0100"),
            (25, status),
        ];
        obr.extend_from_slice(extra);
        format!(
            "MSH|^~\\&|LIS|NORTH|OE|NORTH|202612051130||ORU^R01|R-{status}|P|2.5\r\
PID|1||PAT123\r{}OBX|1|NM|TROP||42|ng/L\r{after}",
            segment("OBR", &obr)
        )
    }

    #[test]
    fn a_new_order_is_a_request_with_its_meaning_and_no_patient() {
        let e = events(&order("NW", "", "TROP", "WARD5"));
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert_eq!(e.r#type, EventType::Requested as i32);
        assert_eq!(
            (e.kind.as_str(), e.supplier.as_str(), e.customer.as_str()),
            ("lab", "lab", "ward-5")
        );
        assert_eq!(e.priority, v1::Priority::Stat as i32);
        assert_eq!(
            e.attributes.get("test").map(String::as_str),
            Some("troponin")
        );
        // 10:28 +01:00 from ORC-9.
        assert_eq!(
            e.occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_462_880)
        );
        assert!(e.handoff_id.starts_with("hl7-") && e.event_id.starts_with("hl7-"));
        let text = format!("{e:?}");
        for patient in ["PAT123", "ROE", "RICHARD", "PL-1"] {
            assert!(!text.contains(patient), "{patient} in {text}");
        }
    }

    #[test]
    fn ids_are_stable_for_a_resend_and_differ_by_salt_and_message() {
        let a = events(&order("NW", "", "TROP", "WARD5"));
        let b = events(&order("NW", "", "TROP", "WARD5"));
        assert_eq!(a, b, "a resend is the same event");
        let cancel = events(&order("CA", "", "TROP", "WARD5"));
        assert_eq!(
            cancel[0].handoff_id, a[0].handoff_id,
            "same order, same hand-off"
        );
        assert_ne!(
            cancel[0].event_id, a[0].event_id,
            "another message, another event"
        );
        assert_ne!(
            Ids::new("one").id("x", &["1"]),
            Ids::new("two").id("x", &["1"])
        );
    }

    #[test]
    fn status_pairs_win_over_the_control_code() {
        let e = events(&order("SC", "IP", "TROP", "WARD5"));
        assert_eq!(e[0].r#type, EventType::Started as i32);
        let e = events(&order("SC", "CM", "TROP", "WARD5"));
        assert_eq!(e[0].r#type, EventType::Completed as i32);
        assert_eq!(
            translate_text(&order("SC", "ZZ", "TROP", "WARD5")),
            Ok(Translation::Nothing {
                reason: "status not mapped"
            })
        );
    }

    #[test]
    fn a_status_the_mapping_lacks_is_ignored_even_without_an_order_number() {
        let text = order("SC", "ZZ", "TROP", "WARD5").replace("PL-1^OE", "");
        assert_eq!(
            translate_text(&text),
            Ok(Translation::Nothing {
                reason: "status not mapped"
            })
        );
    }

    #[test]
    fn what_baton_cannot_place_is_refused_naming_the_field() {
        let e = translate_text(&order("NW", "", "XRAY", "WARD5")).expect_err("unknown service");
        assert_eq!((e.field.as_str(), e.code), ("OBR-4", 103));
        let e = translate_text(&order("NW", "", "TROP", "MARS")).expect_err("unknown location");
        assert_eq!((e.field.as_str(), e.code), ("ORC-13", 103));
        let adt = "MSH|^~\\&|ADT|NORTH|X|Y|202612051030||ADT^A01|9|P|2.5\rPID|1||PAT123\r";
        let e = translate_text(adt).expect_err("not an order");
        assert!(e.is_unsupported());
        assert!(!e.to_string().contains("PAT123"));
    }

    #[test]
    fn results_start_and_complete_and_a_correction_amends() {
        let result = |status: &str| result_with(status, &[], "");
        let p = events(&result("P"));
        assert_eq!(p[0].r#type, EventType::Started as i32);
        let f = events(&result("F"));
        assert_eq!(f[0].r#type, EventType::Completed as i32);
        assert_eq!(
            f[0].occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_466_540)
        );
        let request = events(&order("NW", "", "TROP", "WARD5"));
        assert_eq!(
            f[0].handoff_id, request[0].handoff_id,
            "the result finds its order"
        );
        let c = events(&result("C"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].r#type, EventType::Amended as i32);
        assert_eq!(c[0].handoff_id, f[0].handoff_id, "the same hand-off");
        assert_eq!(c[0].occurred_at, f[0].occurred_at, "reported at OBR-22");
    }

    #[test]
    fn the_specimen_s_arrival_is_told_once_however_often_it_is_repeated() {
        let obr14 = [(14, "202612051050+0100")];
        let p = told(&result_with("P", &obr14, ""));
        assert_eq!(p.len(), 2);
        let (received, started) = (&p[0], &p[1]);
        assert!(received.may_be_past && !started.may_be_past);
        assert_eq!(received.event.r#type, EventType::Acknowledged as i32);
        assert_eq!(started.event.r#type, EventType::Started as i32);
        assert_eq!(received.event.handoff_id, started.event.handoff_id);
        // 10:50 +01:00.
        assert_eq!(
            received.event.occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_464_200)
        );
        let f = told(&result_with("F", &obr14, ""));
        assert_eq!(f[0], p[0], "the final result repeats it: one event");
        assert_ne!(f[1].event.event_id, p[1].event.event_id);

        // SPM-18 wins over OBR-14.
        let spm = segment("SPM", &[(1, "1"), (18, "202612051045+0100")]);
        let both = told(&result_with("F", &obr14, &spm));
        assert_eq!(
            both[0].event.occurred_at.as_ref().map(|t| t.seconds),
            Some(1_796_463_900)
        );
        assert_ne!(both[0].event.event_id, p[0].event.event_id);

        // An order that says when the specimen arrived: requested first.
        let new = order("NW", "", "TROP", "WARD5").replace(
            "OBR|1|PL-1^OE||TROP^Troponin\r",
            &segment(
                "OBR",
                &[
                    (1, "1"),
                    (2, "PL-1^OE"),
                    (4, "TROP"),
                    (14, "202612051050+0100"),
                ],
            ),
        );
        let types: Vec<i32> = events(&new).iter().map(|e| e.r#type).collect();
        assert_eq!(
            types,
            [EventType::Requested as i32, EventType::Acknowledged as i32]
        );

        let bad = translate_text(&result_with("F", &[(14, "yesterday")], ""));
        assert_eq!(
            bad.map(|_| ()).map_err(|e| e.field),
            Err("OBR-14".to_owned())
        );
    }
}
