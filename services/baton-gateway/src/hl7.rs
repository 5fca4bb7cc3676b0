//! The few parts of an HL7 v2 message Baton reads: the segments an order
//! or a result is told in (MSH, ORC, OBR, TQ1), split into fields and
//! components. Every other segment (PID, PV1, NK1, IN1, OBX, NTE, ...) is
//! dropped as the message is parsed, so patient data never leaves this
//! module. Pure: text in, values out.

use std::collections::BTreeMap;

/// The segments kept; everything else is dropped unread.
pub const KEPT: [&str; 5] = ["MSH", "ORC", "OBR", "TQ1", "SPM"];

/// Of a specimen (SPM) only SPM-18, when the lab received it, is kept: its
/// other fields hold specimen ids and free text.
const SPM_RECEIVED: usize = 18;

/// Why a message could not be read at all (answered AR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message does not start with an MSH segment")]
    NoHeader,
    #[error("MSH-1/MSH-2: the separators are missing or repeated")]
    Separators,
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("the message is not UTF-8 text")]
    NotText,
}

/// The separators a message declares in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Separators {
    field: char,
    component: char,
    repetition: char,
    escape: char,
    subcomponent: char,
}

/// One kept segment: its name and its fields, numbered as HL7 numbers them
/// (`fields[0]` is SEG-1; for MSH, `fields[0]` is MSH-1, the field separator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    fields: Vec<String>,
}

/// A parsed message: its kept segments in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    separators: Separators,
    pub segments: Vec<Segment>,
}

impl Message {
    /// Reads `bytes` (one MLLP frame's content).
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotText)?;
        let text = text.trim_start_matches(['\r', '\n']);
        if !text.starts_with("MSH") {
            return Err(ParseError::NoHeader);
        }
        let mut chars = text[3..].chars();
        let field = chars.next().ok_or(ParseError::Separators)?;
        let encoding: Vec<char> = chars.take_while(|c| *c != field).collect();
        let [component, repetition, escape, subcomponent] = match encoding[..] {
            [a, b, c, d] => [a, b, c, d],
            [a, b, c, d, _truncation] => [a, b, c, d],
            _ => return Err(ParseError::Separators),
        };
        let all = [field, component, repetition, escape, subcomponent];
        if all
            .iter()
            .enumerate()
            .any(|(i, c)| c.is_alphanumeric() || *c == '\r' || all[i + 1..].contains(c))
        {
            return Err(ParseError::Separators);
        }
        let separators = Separators {
            field,
            component,
            repetition,
            escape,
            subcomponent,
        };
        let segments = text
            .split(['\r', '\n'])
            .filter_map(|line| {
                let name = line.get(..3)?;
                if !KEPT.contains(&name) {
                    return None;
                }
                let mut fields: Vec<String> = line.split(field).map(str::to_owned).collect();
                fields.remove(0);
                if name == "SPM" {
                    for (i, value) in fields.iter_mut().enumerate() {
                        if i + 1 != SPM_RECEIVED {
                            value.clear();
                        }
                    }
                }
                if name == "MSH" {
                    // MSH-1 is the separator itself, which split removed.
                    fields.insert(0, field.to_string());
                }
                Some(Segment {
                    name: name.to_owned(),
                    fields,
                })
            })
            .collect();
        Ok(Message {
            separators,
            segments,
        })
    }

    /// The first `name` segment.
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// `SEG-n.c` of the first `SEG` segment (component `c`, 1-based; 1 for
    /// a field without components), unescaped; `None` when empty.
    pub fn value(&self, segment: &str, field: usize, component: usize) -> Option<String> {
        self.segment(segment)?.value(self, field, component)
    }

    /// MSH-9's message type and trigger (`ORM`, `O01`).
    pub fn message_type(&self) -> Result<(String, String), ParseError> {
        let kind = self
            .value("MSH", 9, 1)
            .ok_or(ParseError::Missing("MSH-9.1"))?;
        let trigger = self.value("MSH", 9, 2).unwrap_or_default();
        Ok((kind, trigger))
    }

    /// Sub-messages that each tell one order: an ORC and the OBR, TQ1 and
    /// SPM that follow it (or an OBR alone, as ORU^R01 without ORC has it).
    pub fn orders(&self) -> Vec<Order<'_>> {
        let mut orders: Vec<Order<'_>> = Vec::new();
        for s in &self.segments {
            match s.name.as_str() {
                "ORC" => orders.push(Order {
                    message: self,
                    orc: Some(s),
                    obr: None,
                    tq1: None,
                    spm: None,
                }),
                "OBR" => match orders.last_mut() {
                    Some(o) if o.obr.is_none() => o.obr = Some(s),
                    _ => orders.push(Order {
                        message: self,
                        orc: None,
                        obr: Some(s),
                        tq1: None,
                        spm: None,
                    }),
                },
                "TQ1" => {
                    if let Some(o) = orders.last_mut() {
                        o.tq1.get_or_insert(s);
                    }
                }
                "SPM" => {
                    if let Some(o) = orders.last_mut() {
                        o.spm.get_or_insert(s);
                    }
                }
                _ => {}
            }
        }
        orders
    }

    fn unescape(&self, text: &str) -> String {
        let sep = &self.separators;
        if !text.contains(sep.escape) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut parts = text.split(sep.escape);
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        // Between escape characters: an escape sequence, then plain text.
        let mut in_escape = true;
        for part in parts {
            if in_escape {
                match part {
                    "F" => out.push(sep.field),
                    "S" => out.push(sep.component),
                    "R" => out.push(sep.repetition),
                    "E" => out.push(sep.escape),
                    "T" => out.push(sep.subcomponent),
                    _ => {}
                }
            } else {
                out.push_str(part);
            }
            in_escape = !in_escape;
        }
        out
    }
}

impl Segment {
    /// `SEG-n.c` (1-based), the first repetition, unescaped; `None` when empty.
    pub fn value(&self, message: &Message, field: usize, component: usize) -> Option<String> {
        let sep = &message.separators;
        let raw = self.fields.get(field.checked_sub(1)?)?;
        if self.name == "MSH" && field <= 2 {
            return Some(raw.clone()).filter(|r| !r.is_empty());
        }
        let first = raw.split(sep.repetition).next()?;
        let part = first.split(sep.component).nth(component.checked_sub(1)?)?;
        let part = part.split(sep.subcomponent).next()?;
        Some(message.unescape(part)).filter(|v| !v.is_empty())
    }
}

/// One order of a message: its ORC, OBR, TQ1 and first SPM, where present.
#[derive(Debug, Clone, Copy)]
pub struct Order<'m> {
    message: &'m Message,
    pub orc: Option<&'m Segment>,
    pub obr: Option<&'m Segment>,
    pub tq1: Option<&'m Segment>,
    pub spm: Option<&'m Segment>,
}

impl Order<'_> {
    /// `SEG-n.c` of this order's `segment` (ORC, OBR, TQ1 or SPM).
    pub fn value(&self, segment: &str, field: usize, component: usize) -> Option<String> {
        let s = match segment {
            "ORC" => self.orc,
            "OBR" => self.obr,
            "TQ1" => self.tq1,
            "SPM" => self.spm,
            _ => None,
        }?;
        s.value(self.message, field, component)
    }

    /// The first of `places` (`("ORC", 9)`, ...) that has a value.
    pub fn first_of(&self, places: &[(&str, usize)]) -> Option<(String, String)> {
        places.iter().find_map(|(segment, field)| {
            self.value(segment, *field, 1)
                .map(|v| (format!("{segment}-{field}"), v))
        })
    }
}

/// An HL7 date/time (`YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]`) as ms since
/// the epoch; without an offset it is read in `zone`. `None` if it is not
/// one.
pub fn timestamp(text: &str, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let (clock, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    if whole.len() < 8 || whole.len() % 2 != 0 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| whole.get(range).map_or(Ok(0), str::parse::<i16>);
    let date = jiff::civil::Date::new(
        num(0..4).ok()?,
        num(4..6).ok()? as i8,
        num(6..8).ok()? as i8,
    )
    .ok()?;
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        digits.parse::<i32>().ok()?
    };
    let time = jiff::civil::Time::new(
        num(8..10).ok()? as i8,
        num(10..12).ok()? as i8,
        num(12..14).ok()? as i8,
        millis * 1_000_000,
    )
    .ok()?;
    let civil = date.to_datetime(time);
    let zoned = match offset {
        Some(offset) => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let digits = &offset[1..];
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i32 = digits[..2].parse().ok()?;
            let minutes: i32 = digits[2..].parse().ok()?;
            let seconds = sign * (hours * 3600 + minutes * 60);
            let offset = jiff::tz::Offset::from_seconds(seconds).ok()?;
            civil.to_zoned(jiff::tz::TimeZone::fixed(offset)).ok()?
        }
        None => civil.to_zoned(zone.clone()).ok()?,
    };
    Some(zoned.timestamp().as_millisecond())
}

/// Every kept segment's fields by name, for tests and diagnostics that
/// must show what was kept (never what was dropped).
pub fn kept_fields(message: &Message) -> BTreeMap<String, usize> {
    message
        .segments
        .iter()
        .map(|s| (s.name.clone(), s.fields.len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORDER: &str = "MSH|^~\\&|OE|NORTH|LIS|NORTH|202612051030+0100||ORM^O01|MSG00017|P|2.5\r\
PID|1||PATID1234^^^NORTH^MR||DOE^JANE||19700101|F\r\
PV1|1|I|WARD5^101^1\r\
ORC|NW|PL-881^OE|FL-42^LIS||SC||^^^^^S||202612051028+0100||||WARD5\r\
OBR|1|PL-881^OE|FL-42^LIS|TROP^Troponin T^L|||202612051025+0100\r";

    #[test]
    fn of_a_specimen_only_the_time_the_lab_received_it_is_kept() {
        let text = format!(
            "{ORDER}SPM|1|SP-7781^LIS||BLD^Blood||||||||||Haemolysed, from left arm|||202612051031+0100|202612051040+0100\r"
        );
        let m = Message::parse(text.as_bytes()).expect("parses");
        let o = m.orders()[0];
        assert_eq!(o.value("SPM", 18, 1).as_deref(), Some("202612051040+0100"));
        for field in (1..=19).filter(|f| *f != 18) {
            assert_eq!(o.value("SPM", field, 1), None, "SPM-{field} dropped");
        }
        for kept_nowhere in ["SP-7781", "Haemolysed", "BLD", "202612051031"] {
            assert!(!format!("{m:?}").contains(kept_nowhere), "{kept_nowhere}");
        }
    }

    #[test]
    fn an_order_reads_as_its_fields_and_drops_the_patient() {
        let m = Message::parse(ORDER.as_bytes()).expect("parses");
        assert_eq!(
            m.message_type().expect("type"),
            ("ORM".into(), "O01".into())
        );
        assert_eq!(m.value("MSH", 3, 1).as_deref(), Some("OE"));
        assert_eq!(m.value("MSH", 10, 1).as_deref(), Some("MSG00017"));
        assert_eq!(m.value("MSH", 1, 1).as_deref(), Some("|"));
        let orders = m.orders();
        assert_eq!(orders.len(), 1);
        let o = orders[0];
        assert_eq!(o.value("ORC", 1, 1).as_deref(), Some("NW"));
        assert_eq!(o.value("ORC", 2, 1).as_deref(), Some("PL-881"));
        assert_eq!(o.value("ORC", 2, 2).as_deref(), Some("OE"));
        assert_eq!(o.value("ORC", 7, 6).as_deref(), Some("S"));
        assert_eq!(o.value("ORC", 13, 1).as_deref(), Some("WARD5"));
        assert_eq!(o.value("OBR", 4, 1).as_deref(), Some("TROP"));
        let names: Vec<&str> = m.segments.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["MSH", "ORC", "OBR"], "PID and PV1 dropped");
        assert!(
            !format!("{m:?}").contains("DOE"),
            "nothing of the patient kept"
        );
    }

    #[test]
    fn escapes_and_separators_are_read_as_declared() {
        let m = Message::parse(b"MSH#*~!&#A!F!B#\rOBR#1###X*y!S!z").expect("parses");
        assert_eq!(m.value("MSH", 3, 1).as_deref(), Some("A#B"));
        assert_eq!(m.value("OBR", 4, 2).as_deref(), Some("y*z"));
        assert_eq!(Message::parse(b"PID|1"), Err(ParseError::NoHeader));
        assert_eq!(Message::parse(b"MSH|^^\\&|"), Err(ParseError::Separators));
        assert_eq!(Message::parse(b"MSH"), Err(ParseError::Separators));
    }

    #[test]
    fn times_are_read_with_their_offset_or_in_the_zone() {
        let utc = jiff::tz::TimeZone::UTC;
        let amsterdam = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("zone");
        // 2026-12-05 10:30 +01:00 is 09:30 UTC.
        let at = 1_796_463_000_000;
        assert_eq!(timestamp("202612051030+0100", &utc), Some(at));
        assert_eq!(timestamp("202612050930", &utc), Some(at));
        assert_eq!(timestamp("202612051030", &amsterdam), Some(at));
        assert_eq!(timestamp("20261205093000.25-0000", &utc), Some(at + 250));
        assert_eq!(timestamp("20261205", &utc), Some(at - 34_200_000));
        for bad in [
            "",
            "2026",
            "2026120",
            "20261305",
            "202612051030+01",
            "2026120510x0",
        ] {
            assert_eq!(timestamp(bad, &utc), None, "{bad}");
        }
    }

    proptest! {
        /// Any text after a valid header: parsed or refused, never a panic.
        #[test]
        fn any_message_never_panics(body in "[A-Z0-9|^~\\\\&\r\n. +-]{0,200}", sep in "[|#]") {
            let text = format!("MSH{sep}^~\\&{sep}{body}");
            if let Ok(m) = Message::parse(text.as_bytes()) {
                for o in m.orders() {
                    for seg in ["ORC", "OBR", "TQ1", "SPM"] {
                        for field in 0..30 {
                            let _ = o.value(seg, field, 0);
                            let _ = o.value(seg, field, 3);
                        }
                    }
                }
                let _ = m.message_type();
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn any_time_never_panics(text in "[0-9.+-]{0,24}") {
            let _ = timestamp(&text, &jiff::tz::TimeZone::UTC);
        }
    }
}
