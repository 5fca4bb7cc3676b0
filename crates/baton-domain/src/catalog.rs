//! The catalog: departments, service kinds and the promises between them.
//!
//! Hospital staff edit it by hand, so every mistake is reported with the
//! field's path (`promises[2].targets.stat`) and, where it can be found, the
//! line it is on. A catalog that does not validate is never used.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{
    event::{EventType, Priority},
    id::Token,
    lifecycle::Handoff,
    time::{format_duration, parse_duration},
};

/// A catalog that cannot be used, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("catalog {}{path}: {message}", line.map(|l| format!("line {l}, ")).unwrap_or_default())]
    Invalid {
        path: String,
        message: String,
        line: Option<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: Token,
    pub name: String,
}

/// A service promise: which hand-offs it covers, which events start, stop and
/// pause its clock, and the target per priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub id: Token,
    pub kind: Token,
    pub supplier: Option<Token>,
    pub customer: Option<Token>,
    pub start: EventType,
    pub stop: Vec<EventType>,
    pub pause: Vec<EventType>,
    pub resume: Vec<EventType>,
    pub targets: BTreeMap<Priority, Duration>,
}

impl Policy {
    /// Whether this promise applies to the hand-off as it stands.
    pub fn covers(&self, handoff: &Handoff) -> bool {
        self.kind == handoff.kind
            && self
                .supplier
                .as_ref()
                .is_none_or(|s| *s == handoff.supplier)
            && self
                .customer
                .as_ref()
                .is_none_or(|c| *c == handoff.customer)
            && self.targets.contains_key(&handoff.priority)
    }

    pub fn target(&self, priority: Priority) -> Option<Duration> {
        self.targets.get(&priority).copied()
    }
}

/// A validated catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub departments: Vec<Department>,
    pub kinds: Vec<Token>,
    pub promises: Vec<Policy>,
    #[serde(skip)]
    department_ids: BTreeSet<Token>,
    #[serde(skip)]
    version: String,
}

// What the file holds, before validation. Unknown fields are refused so that a
// misspelt "stpo" is an error, not a promise that never stops.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    departments: Vec<RawDepartment>,
    kinds: Vec<String>,
    #[serde(default)]
    promises: Vec<RawPromise>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromise {
    id: String,
    kind: String,
    #[serde(default)]
    supplier: Option<String>,
    #[serde(default)]
    customer: Option<String>,
    start: String,
    stop: Vec<String>,
    #[serde(default)]
    pause: Vec<String>,
    #[serde(default)]
    resume: Vec<String>,
    targets: BTreeMap<String, String>,
}

/// Collects the first error with its path, and finds its line in the source.
struct Checker<'a> {
    source: &'a str,
}

impl Checker<'_> {
    fn fail(
        &self,
        path: impl fmt::Display,
        message: impl fmt::Display,
        value: &str,
    ) -> CatalogError {
        CatalogError::Invalid {
            path: path.to_string(),
            message: message.to_string(),
            line: self.line_of(value),
        }
    }

    /// Best effort: the line of the first occurrence of the offending value.
    fn line_of(&self, value: &str) -> Option<usize> {
        let quoted = serde_json::to_string(value).ok()?;
        let offset = self.source.find(&quoted)?;
        Some(self.source[..offset].matches('\n').count() + 1)
    }

    fn token(&self, path: impl fmt::Display, value: &str) -> Result<Token, CatalogError> {
        Token::parse(value).map_err(|e| self.fail(path, format!("{value:?} {e}"), value))
    }

    fn event(&self, path: impl fmt::Display, value: &str) -> Result<EventType, CatalogError> {
        EventType::from_name(value).ok_or_else(|| {
            let names: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
            self.fail(
                path,
                format!(
                    "{value:?} is not an event; expected one of {}",
                    names.join(", ")
                ),
                value,
            )
        })
    }

    fn events(&self, path: &str, values: &[String]) -> Result<Vec<EventType>, CatalogError> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| self.event(format!("{path}[{i}]"), v))
            .collect()
    }
}

impl Catalog {
    /// Parses and validates a catalog from its JSON text.
    pub fn from_json(source: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = serde_json::from_str(source).map_err(|e| CatalogError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let check = Checker { source };

        let mut departments = Vec::new();
        let mut department_ids = BTreeSet::new();
        for (i, d) in raw.departments.iter().enumerate() {
            let id = check.token(format_args!("departments[{i}].id"), &d.id)?;
            if !department_ids.insert(id.clone()) {
                return Err(check.fail(
                    format_args!("departments[{i}].id"),
                    format!("{:?} is listed twice", d.id),
                    &d.id,
                ));
            }
            if d.name.trim().is_empty() {
                return Err(check.fail(
                    format_args!("departments[{i}].name"),
                    "must not be empty",
                    &d.id,
                ));
            }
            departments.push(Department {
                id,
                name: d.name.clone(),
            });
        }

        let mut kinds = Vec::new();
        for (i, k) in raw.kinds.iter().enumerate() {
            let kind = check.token(format_args!("kinds[{i}]"), k)?;
            if kinds.contains(&kind) {
                return Err(check.fail(
                    format_args!("kinds[{i}]"),
                    format!("{k:?} is listed twice"),
                    k,
                ));
            }
            kinds.push(kind);
        }

        let mut promises: Vec<Policy> = Vec::new();
        for (i, p) in raw.promises.iter().enumerate() {
            let at = |field: &str| format!("promises[{i}].{field}");
            let id = check.token(at("id"), &p.id)?;
            if promises.iter().any(|q| q.id == id) {
                return Err(check.fail(
                    at("id"),
                    format!("{:?} is used by an earlier promise", p.id),
                    &p.id,
                ));
            }
            let kind = check.token(at("kind"), &p.kind)?;
            if !kinds.contains(&kind) {
                return Err(check.fail(
                    at("kind"),
                    format!("{:?} is not one of the catalog's kinds", p.kind),
                    &p.kind,
                ));
            }
            let department =
                |field: &str, value: &Option<String>| -> Result<Option<Token>, CatalogError> {
                    let Some(value) = value else { return Ok(None) };
                    let id = check.token(at(field), value)?;
                    if !department_ids.contains(&id) {
                        return Err(check.fail(
                            at(field),
                            format!("{value:?} is not one of the catalog's departments"),
                            value,
                        ));
                    }
                    Ok(Some(id))
                };
            let supplier = department("supplier", &p.supplier)?;
            let customer = department("customer", &p.customer)?;
            let start = check.event(at("start"), &p.start)?;
            let stop = check.events(&at("stop"), &p.stop)?;
            if stop.is_empty() {
                return Err(check.fail(at("stop"), "must name at least one event", &p.id));
            }
            if stop.contains(&start) {
                return Err(check.fail(at("stop"), "must not contain the start event", &p.start));
            }
            let pause = check.events(&at("pause"), &p.pause)?;
            let resume = check.events(&at("resume"), &p.resume)?;
            if pause.is_empty() != resume.is_empty() {
                return Err(check.fail(
                    at("resume"),
                    "pause and resume must be given together",
                    &p.id,
                ));
            }
            let mut targets = BTreeMap::new();
            for (name, value) in &p.targets {
                let path = format!("promises[{i}].targets.{name}");
                let priority = Priority::from_name(name).ok_or_else(|| {
                    check.fail(
                        &path,
                        format!("{name:?} is not a priority; expected routine, urgent or stat"),
                        name,
                    )
                })?;
                let target = parse_duration(value).map_err(|e| check.fail(&path, e, value))?;
                targets.insert(priority, target);
            }
            if targets.is_empty() {
                return Err(check.fail(
                    at("targets"),
                    "must give a target for at least one priority",
                    &p.id,
                ));
            }
            promises.push(Policy {
                id,
                kind,
                supplier,
                customer,
                start,
                stop,
                pause,
                resume,
                targets,
            });
        }

        let mut catalog = Catalog {
            departments,
            kinds,
            promises,
            department_ids,
            version: String::new(),
        };
        catalog.version = catalog.fingerprint();
        Ok(catalog)
    }

    /// A content hash of the validated catalog: views built under another
    /// version are out of date. Whitespace and key order do not change it.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", fnv1a64(&canonical))
    }

    pub fn has_department(&self, id: &Token) -> bool {
        self.department_ids.contains(id)
    }

    pub fn has_kind(&self, kind: &Token) -> bool {
        self.kinds.contains(kind)
    }

    pub fn policy(&self, id: &str) -> Option<&Policy> {
        self.promises.iter().find(|p| p.id.as_str() == id)
    }

    /// The promises that cover a hand-off, in catalog order.
    pub fn policies_for<'a>(
        &'a self,
        handoff: &'a Handoff,
    ) -> impl Iterator<Item = &'a Policy> + 'a {
        self.promises.iter().filter(move |p| p.covers(handoff))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|(p, d)| format!("{p} {}", format_duration(*d)))
            .collect();
        write!(f, "{} ({}: {})", self.id, self.kind, targets.join(", "))
    }
}

/// FNV-1a, 64 bit: a stable, dependency-free content hash (not for security).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "ward-5", "name": "Ward 5"}
  ],
  "kinds": ["repair", "lab"],
  "promises": [
    {"id": "repair-response", "kind": "repair",
     "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "urgent": "15m", "stat": "5m"}}
  ]
}"#;

    #[test]
    fn reads_a_good_catalog() {
        let catalog = Catalog::from_json(GOOD).expect("valid");
        let policy = catalog.policy("repair-response").expect("policy");
        assert_eq!(policy.start, EventType::Requested);
        assert_eq!(policy.stop, vec![EventType::Acknowledged]);
        assert_eq!(
            policy.target(Priority::Routine),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            policy.target(Priority::Stat),
            Some(Duration::from_secs(300))
        );
        assert_eq!(catalog.version().len(), 16);
    }

    #[test]
    fn version_ignores_layout_but_not_content() {
        let a = Catalog::from_json(GOOD).expect("valid");
        let squeezed: String = GOOD.split_whitespace().collect::<Vec<_>>().join(" ");
        let b = Catalog::from_json(&squeezed).expect("valid");
        assert_eq!(a.version(), b.version());
        let changed = Catalog::from_json(&GOOD.replace("\"30m\"", "\"20m\"")).expect("valid");
        assert_ne!(a.version(), changed.version());
    }

    fn invalid(source: &str) -> (String, Option<usize>) {
        match Catalog::from_json(source) {
            Err(CatalogError::Invalid { path, line, .. }) => (path, line),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_and_line_of_each_mistake() {
        assert_eq!(
            invalid(&GOOD.replace("\"kind\": \"repair\"", "\"kind\": \"repiar\"")),
            ("promises[0].kind".into(), Some(8))
        );
        assert_eq!(
            invalid(&GOOD.replace("[\"acknowledged\"]", "[\"acknowleged\"]")),
            ("promises[0].stop[0]".into(), Some(9))
        );
        assert_eq!(
            invalid(&GOOD.replace("\"15m\"", "\"15 minutes\"")),
            ("promises[0].targets.urgent".into(), Some(10))
        );
        assert_eq!(
            invalid(&GOOD.replace("\"stat\":", "\"asap\":")).0,
            "promises[0].targets.asap"
        );
        assert_eq!(
            invalid(&GOOD.replace("\"ward-5\"", "\"ward.5\"")),
            ("departments[1].id".into(), Some(4))
        );
        assert_eq!(
            invalid(&GOOD.replace("[\"repair\", \"lab\"]", "[\"repair\", \"repair\"]")).0,
            "kinds[1]"
        );
        assert_eq!(
            invalid(&GOOD.replace("[\"acknowledged\"]", "[\"requested\"]")).0,
            "promises[0].stop"
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_give_a_line() {
        let err =
            Catalog::from_json(&GOOD.replace("\"stop\"", "\"stpo\"")).expect_err("unknown field");
        assert!(matches!(err, CatalogError::Syntax { line: 9, .. }), "{err}");
        assert!(err.to_string().contains("stpo"), "{err}");
        let err = Catalog::from_json("{\n\"departments\": [,]}").expect_err("syntax");
        assert!(matches!(err, CatalogError::Syntax { line: 2, .. }), "{err}");
    }
}
