//! The mapping file: how a hospital's HL7 codes become Baton's departments,
//! kinds, priorities and events. JSON, read once at start and refused with
//! its path, line and column when it is not what is expected.

use std::{collections::BTreeMap, path::Path};

use baton_proto::v1::{EventType, Priority};
use serde::Deserialize;

/// Why the mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("reading the mapping {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the mapping {path}, line {line} column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the mapping {path}: {at}: {message}")]
    Invalid {
        path: String,
        at: String,
        message: String,
    },
}

/// A service code's meaning: what kind of hand-off, to which supplier, with
/// which request attributes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub kind: String,
    pub supplier: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    locations: BTreeMap<String, String>,
    services: BTreeMap<String, Service>,
    priorities: BTreeMap<String, String>,
    #[serde(default = "routine")]
    default_priority: String,
    order_control: BTreeMap<String, String>,
    result_status: BTreeMap<String, String>,
    #[serde(default)]
    received: Option<String>,
}

fn routine() -> String {
    "routine".to_owned()
}

/// The mapping, checked.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// ORC-13.1 (the ordering location's point of care) to the customer department.
    pub locations: BTreeMap<String, String>,
    /// OBR-4.1 (universal service id) to the hand-off's kind and supplier.
    pub services: BTreeMap<String, Service>,
    /// ORC-7.6 / TQ1-9.1 to a priority.
    pub priorities: BTreeMap<String, Priority>,
    pub default_priority: Priority,
    /// ORC-1 (or `ORC-1:ORC-5`, which wins) to the event it tells.
    pub order_control: BTreeMap<String, EventType>,
    /// OBR-25 to the event it tells (`C`, a corrected result: amended).
    pub result_status: BTreeMap<String, EventType>,
    /// The event a specimen's arrival in the lab tells (SPM-18, else
    /// OBR-14), if any: usually acknowledged.
    pub received: Option<EventType>,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: shown.clone(),
            source,
        })?;
        Mapping::from_json(&text).map_err(|e| e.at_path(&shown))
    }

    /// Reads a mapping from its JSON text (errors name the path as `-`).
    pub fn from_json(text: &str) -> Result<Mapping, MappingError> {
        let raw: RawMapping = serde_json::from_str(text).map_err(|e| MappingError::Syntax {
            path: "-".into(),
            line: e.line(),
            column: e.column(),
            message: baton_domain::catalog::json_message(&e),
        })?;
        let invalid = |at: String, message: String| MappingError::Invalid {
            path: "-".into(),
            at,
            message,
        };
        for (code, department) in &raw.locations {
            baton_domain::id::check_token(department)
                .map_err(|e| invalid(format!("locations.{code}"), e.to_string()))?;
        }
        for (code, service) in &raw.services {
            for (what, value) in [("kind", &service.kind), ("supplier", &service.supplier)] {
                baton_domain::id::check_token(value)
                    .map_err(|e| invalid(format!("services.{code}.{what}"), e.to_string()))?;
            }
        }
        let priority = |at: String, name: &str| {
            Priority::from_str_name(&format!("PRIORITY_{}", name.to_uppercase()))
                .filter(|p| *p != Priority::Unspecified)
                .ok_or_else(|| invalid(at, format!("{name:?} is not stat, urgent or routine")))
        };
        let mut priorities = BTreeMap::new();
        for (code, name) in &raw.priorities {
            priorities.insert(code.clone(), priority(format!("priorities.{code}"), name)?);
        }
        let event = |at: String, name: &str| {
            event_type(name).ok_or_else(|| {
                invalid(
                    at,
                    format!("{name:?} is not an event type a message can tell"),
                )
            })
        };
        let events = |table: &str, raw: &BTreeMap<String, String>| {
            raw.iter()
                .map(|(code, name)| Ok((code.clone(), event(format!("{table}.{code}"), name)?)))
                .collect::<Result<BTreeMap<_, _>, MappingError>>()
        };
        Ok(Mapping {
            default_priority: priority("default_priority".into(), &raw.default_priority)?,
            order_control: events("order_control", &raw.order_control)?,
            result_status: events("result_status", &raw.result_status)?,
            received: match &raw.received {
                Some(name) => Some(event("received".into(), name)?),
                None => None,
            },
            locations: raw.locations,
            services: raw.services,
            priorities,
        })
    }
}

/// An event type by the catalog's name (`on_hold`), if a message can tell
/// it: not a rating, which is the customer's, and no message's.
fn event_type(name: &str) -> Option<EventType> {
    EventType::from_str_name(&format!("EVENT_TYPE_{}", name.to_uppercase()))
        .filter(|t| !matches!(t, EventType::Unspecified | EventType::Rated))
}

impl MappingError {
    fn at_path(self, path: &str) -> MappingError {
        match self {
            MappingError::Syntax {
                line,
                column,
                message,
                ..
            } => MappingError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message,
            },
            MappingError::Invalid { at, message, .. } => MappingError::Invalid {
                path: path.to_owned(),
                at,
                message,
            },
            read => read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lab_mapping_is_valid() {
        let text = include_str!("../../../deploy/gateway/hl7-lab.json");
        let m = Mapping::from_json(text).expect("valid");
        assert_eq!(m.order_control.get("NW"), Some(&EventType::Requested));
        assert_eq!(m.result_status.get("C"), Some(&EventType::Amended));
        assert_eq!(m.received, Some(EventType::Acknowledged));
        assert_eq!(m.priorities.get("S"), Some(&Priority::Stat));
    }

    #[test]
    fn a_wrong_mapping_names_where() {
        let base = r#"{"locations": {}, "services": {}, "priorities": {}, "order_control": {}, "result_status": {}}"#;
        assert!(Mapping::from_json(base).is_ok());
        let bad = base.replace(r#""priorities": {}"#, r#""priorities": {"S": "urgentish"}"#);
        let e = Mapping::from_json(&bad)
            .expect_err("bad priority")
            .to_string();
        assert!(e.contains("priorities.S") && e.contains("urgentish"), "{e}");
        let bad = base.replace(
            r#""order_control": {}"#,
            r#""order_control": {"NW": "opened"}"#,
        );
        let e = Mapping::from_json(&bad).expect_err("bad event").to_string();
        assert!(e.contains("order_control.NW"), "{e}");
        let bad = format!(r#"{}, "received": "rated"}}"#, &base[..base.len() - 1]);
        let e = Mapping::from_json(&bad).expect_err("a rating").to_string();
        assert!(e.contains("received") && e.contains("rated"), "{e}");
        let bad = base.replace(r#""locations": {}"#, r#""locations": {"W5": "ward 5"}"#);
        let e = Mapping::from_json(&bad)
            .expect_err("bad department")
            .to_string();
        assert!(e.contains("locations.W5"), "{e}");
        let e = Mapping::from_json("{\n  \"locations\": [\n}")
            .expect_err("syntax")
            .to_string();
        assert!(
            e.contains("line 2 column") && e.matches("line").count() == 1,
            "{e}"
        );
    }
}
