//! HL7 acknowledgements (original mode): AA when every event of the
//! message is stored, AE with an ERR segment naming the field when Baton
//! understands the message but refuses it, AR when it cannot read it. An
//! ACK echoes only the sender's application, facility and control id,
//! never anything of the message's content.

use std::fmt::Write as _;

use crate::hl7::Message;

/// MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Application accept: stored.
    Accept,
    /// Application error: understood and refused.
    Error,
    /// Application reject: not read.
    Reject,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Accept => "AA",
            Code::Error => "AE",
            Code::Reject => "AR",
        }
    }
}

/// What went wrong, for the ERR segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem<'a> {
    /// `OBR-4`: becomes ERR-2 (`OBR^1^4`).
    pub field: &'a str,
    /// HL7 table 0357.
    pub code: u16,
    /// ERR-8, for the person reading the sender's error queue.
    pub text: &'a str,
}

/// The ACK for `original` (when it could be read), as of `now` (ms).
pub fn ack(
    original: Option<&Message>,
    code: Code,
    problem: Option<Problem<'_>>,
    now: i64,
) -> Vec<u8> {
    let from = |field: usize| {
        original
            .and_then(|m| m.value("MSH", field, 1))
            .map(|v| escape(&v))
            .unwrap_or_default()
    };
    let control = from(10);
    let trigger = original
        .and_then(|m| m.value("MSH", 9, 2))
        .map(|v| escape(&v))
        .unwrap_or_default();
    let version = original
        .and_then(|m| m.value("MSH", 12, 1))
        .map(|v| escape(&v))
        .unwrap_or_else(|| "2.5".to_owned());
    let stamp = jiff::Timestamp::from_millisecond(now)
        .map(|t| t.strftime("%Y%m%d%H%M%S+0000").to_string())
        .unwrap_or_default();
    let mut out = format!(
        "MSH|^~\\&|BATON|BATON|{app}|{facility}|{stamp}||ACK^{trigger}^ACK|ACK{control}|P|{version}\rMSA|{code}|{control}\r",
        app = from(3),
        facility = from(4),
        code = code.as_str(),
    );
    if let Some(p) = problem {
        let location = p
            .field
            .split_once('-')
            .map(|(segment, field)| format!("{segment}^1^{field}"))
            .unwrap_or_default();
        let _ = write!(
            out,
            "ERR||{location}|{}^{}^HL70357|E||||{}\r",
            p.code,
            meaning(p.code),
            escape(p.text)
        );
    }
    out.into_bytes()
}

fn meaning(code: u16) -> &'static str {
    match code {
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        200 => "Unsupported message type",
        _ => "Application internal error",
    }
}

/// `text` with the separators escaped, so it cannot break the ACK's structure.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_echoes_the_control_id_and_names_the_field() {
        let m = Message::parse(
            b"MSH|^~\\&|OE|NORTH|LIS|NORTH|202612051030||ORM^O01|MSG77|P|2.5\rPID|1||PAT9^^^X||DOE\r",
        )
        .expect("parses");
        let now = 1_796_463_000_000;
        let aa = String::from_utf8(ack(Some(&m), Code::Accept, None, now)).expect("text");
        assert_eq!(
            aa,
            "MSH|^~\\&|BATON|BATON|OE|NORTH|20261205093000+0000||ACK^O01^ACK|ACKMSG77|P|2.5\rMSA|AA|MSG77\r"
        );
        let problem = Problem {
            field: "OBR-4",
            code: 103,
            text: "service \"X|Y\" is not in the mapping",
        };
        let ae = String::from_utf8(ack(Some(&m), Code::Error, Some(problem), now)).expect("text");
        assert!(ae.contains("MSA|AE|MSG77\r"), "{ae}");
        assert!(
            ae.contains(
                "ERR||OBR^1^4|103^Table value not found^HL70357|E||||service \"X\\F\\Y\" is not"
            ),
            "{ae}"
        );
        assert!(!ae.contains("PAT9") && !ae.contains("DOE"));
        let ar = String::from_utf8(ack(None, Code::Reject, None, now)).expect("text");
        assert!(ar.contains("MSA|AR|\r"), "{ar}");
        let parsed = Message::parse(ae.as_bytes()).expect("an ACK is HL7 itself");
        assert_eq!(parsed.value("MSH", 9, 1).as_deref(), Some("ACK"));
    }
}
