//! Process-mining event logs, read as (case, activity, time) rows: XES
//! (streamed with quick-xml, no document tree) and CSV with a header row.
//! Only the three fields the mapping needs are kept; every other attribute
//! of the log (ages, diagnoses, lab values) is skipped as it is read.

use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub case: String,
    pub activity: String,
    /// Milliseconds since the epoch (UTC; the log's offsets applied).
    pub at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("xml: {0}")]
    Xml(String),
    #[error("line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("{what}: {value:?} is not an RFC 3339 timestamp with an offset")]
    Time { what: String, value: String },
    #[error("reading the log: {0}")]
    Io(#[from] std::io::Error),
}

/// Parses an RFC 3339 timestamp with its offset (`2014-10-22T11:15:41.000+02:00`).
pub fn parse_time(what: &str, value: &str) -> Result<i64, LogError> {
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| LogError::Time {
            what: what.to_owned(),
            value: value.to_owned(),
        })
}

/// Reads an XES log: each `<trace>`'s `concept:name` is the case, each
/// `<event>`'s `concept:name` the activity and `time:timestamp` the time.
/// Events without a name or a time are skipped.
pub fn read_xes(input: impl BufRead) -> Result<Vec<LogEvent>, LogError> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut xes = XesReader::default();
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => {
                return Err(LogError::Xml(format!(
                    "at byte {}: {e}",
                    reader.buffer_position()
                )))
            }
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => xes.open(&e, false)?,
            Ok(Event::Empty(e)) => xes.open(&e, true)?,
            Ok(Event::End(e)) => xes.close(e.name().as_ref())?,
            Ok(_) => {}
        }
        buf.clear();
    }
    Ok(xes.out)
}

/// An event's activity and time, as far as read.
type XesEvent = (Option<String>, Option<String>);

/// Where the XES reader is (inside a trace, inside an event, and how deep
/// inside the event: nested list/container attributes are not the event's
/// own), and the events read so far.
#[derive(Debug, Default)]
struct XesReader {
    in_trace: bool,
    case: Option<String>,
    event: Option<XesEvent>,
    /// The trace's events, kept until its end, where its name may come.
    pending: Vec<XesEvent>,
    depth_in_event: usize,
    out: Vec<LogEvent>,
}

impl XesReader {
    /// An element starts (`empty`: and ends at once, `<string .../>`).
    fn open(&mut self, element: &BytesStart<'_>, empty: bool) -> Result<(), LogError> {
        match element.name().as_ref() {
            b"trace" if !empty => {
                self.in_trace = true;
                self.case = None;
                self.pending.clear();
            }
            b"event" if self.in_trace && !empty => {
                self.event = Some((None, None));
                self.depth_in_event = 0;
            }
            _ => {
                let own = self.depth_in_event == 0;
                if !empty && self.event.is_some() {
                    self.depth_in_event += 1;
                }
                let Some((key, value)) = key_value(element)? else {
                    return Ok(());
                };
                match (&mut self.event, key.as_str()) {
                    (Some((activity, _)), "concept:name") if own => *activity = Some(value),
                    (Some((_, time)), "time:timestamp") if own => *time = Some(value),
                    (None, "concept:name") if self.in_trace && self.case.is_none() => {
                        self.case = Some(value)
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The element `name` ends: a trace's events are complete, an event
    /// joins its trace's.
    fn close(&mut self, name: &[u8]) -> Result<(), LogError> {
        match name {
            b"trace" => {
                self.in_trace = false;
                let case = self.case.take().unwrap_or_default();
                for (activity, time) in self.pending.drain(..) {
                    if let (Some(activity), Some(time)) = (activity, time) {
                        self.out.push(LogEvent {
                            case: case.clone(),
                            activity,
                            at_ms: parse_time("time:timestamp", &time)?,
                        });
                    }
                }
            }
            b"event" => {
                if let Some(e) = self.event.take() {
                    self.pending.push(e);
                }
                self.depth_in_event = 0;
            }
            _ if self.event.is_some() => {
                self.depth_in_event = self.depth_in_event.saturating_sub(1)
            }
            _ => {}
        }
        Ok(())
    }
}

fn key_value(element: &BytesStart<'_>) -> Result<Option<(String, String)>, LogError> {
    let (mut key, mut value) = (None, None);
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| LogError::Xml(e.to_string()))?;
        let text = attribute
            .unescape_value()
            .map_err(|e| LogError::Xml(e.to_string()))?
            .into_owned();
        match attribute.key.as_ref() {
            b"key" => key = Some(text),
            b"value" => value = Some(text),
            _ => {}
        }
    }
    Ok(key.zip(value))
}

/// Which CSV columns hold the case, the activity and the time.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvColumns {
    pub case: String,
    pub activity: String,
    pub timestamp: String,
}

/// Reads a CSV log with a header row. Fields may be quoted ("a, b").
/// A case id such as `NA` is an id like any other.
pub fn read_csv(input: impl BufRead, columns: &CsvColumns) -> Result<Vec<LogEvent>, LogError> {
    let mut lines = input.lines();
    let header = match lines.next() {
        Some(line) => split_csv(&line?),
        None => return Ok(Vec::new()),
    };
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| LogError::Csv {
                line: 1,
                message: format!("no column {name:?} in the header {header:?}"),
            })
    };
    let (case, activity, time) = (
        find(&columns.case)?,
        find(&columns.activity)?,
        find(&columns.timestamp)?,
    );
    let mut out = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_csv(&line);
        let field = |i: usize| {
            fields.get(i).cloned().ok_or_else(|| LogError::Csv {
                line: index + 2,
                message: format!("{} fields, expected at least {}", fields.len(), i + 1),
            })
        };
        out.push(LogEvent {
            case: field(case)?,
            activity: field(activity)?,
            at_ms: parse_time(&format!("line {}", index + 2), &field(time)?)?,
        });
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up log in the Sepsis log's shape: two cases, nested and
    /// log-level attributes that must not be taken for the events' own.
    pub const XES: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<log xes.version="1.0">
  <string key="concept:name" value="synthetic log"/>
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <trace>
    <string key="concept:name" value="X"/>
    <event>
      <string key="concept:name" value="ER Registration"/>
      <string key="org:group" value="A"/>
      <date key="time:timestamp" value="2014-10-22T11:15:41.000+02:00"/>
    </event>
    <event>
      <string key="concept:name" value="ER Sepsis Triage"/>
      <list key="notes"><string key="concept:name" value="not the activity"/></list>
      <date key="time:timestamp" value="2014-10-22T11:30:00.000+02:00"/>
    </event>
    <event>
      <date key="time:timestamp" value="2014-10-22T12:10:00.000+02:00"/>
      <string key="concept:name" value="IV Antibiotics"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="NA"/>
    <event>
      <string key="concept:name" value="ER Sepsis Triage"/>
      <date key="time:timestamp" value="2015-01-05T08:00:00.000+01:00"/>
    </event>
  </trace>
</log>"#;

    #[test]
    fn xes_events_get_their_trace_name_activity_and_utc_time() {
        let events = read_xes(XES.as_bytes()).expect("parse");
        let rows: Vec<(&str, &str, i64)> = events
            .iter()
            .map(|e| (e.case.as_str(), e.activity.as_str(), e.at_ms))
            .collect();
        let t = |s: &str| parse_time("t", s).expect("time");
        assert_eq!(
            rows,
            [
                ("X", "ER Registration", t("2014-10-22T09:15:41Z")),
                ("X", "ER Sepsis Triage", t("2014-10-22T09:30:00Z")),
                ("X", "IV Antibiotics", t("2014-10-22T10:10:00Z")),
                ("NA", "ER Sepsis Triage", t("2015-01-05T07:00:00Z")),
            ]
        );
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_short_log() {
        let broken = "<log><trace><string key=\"concept:name\" value=\"X\"/><event></trace></log>";
        assert!(read_xes(broken.as_bytes()).is_err());
    }

    #[test]
    fn csv_rows_by_header_name_with_quotes_and_na_kept() {
        let csv = "case_id,activity,timestamp,note\n\
                   NA,ER Registration,2014-10-22T11:15:41.000+02:00,\"a, b\"\n\
                   B,\"CRP\",2014-10-22T11:27:00+02:00,x\n";
        let columns = CsvColumns {
            case: "case_id".into(),
            activity: "activity".into(),
            timestamp: "timestamp".into(),
        };
        let events = read_csv(csv.as_bytes(), &columns).expect("parse");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].case, "NA");
        assert_eq!(events[1].activity, "CRP");
        let bad = "case_id,activity\nA,B\n";
        assert!(read_csv(bad.as_bytes(), &columns).is_err());
        assert_eq!(split_csv(r#"a,"b ""c"", d",e"#), ["a", "b \"c\", d", "e"]);
    }
}
