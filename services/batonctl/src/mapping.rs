//! From an event log to hand-offs, by a mapping file (JSON, not code):
//! which activity requests a hand-off and which one completes it, of what
//! kind, from which supplier to which customer, at what priority.
//!
//! Pairing rule (as in `shared/data/README.md`): per case, the **first**
//! request activity, then the **first** completing activity at or after it.
//! A case with a request and no completion is skipped or left open
//! (`unmatched`). Hand-off ids are `<prefix>-<hash of the case id>-<name>`:
//! tokens, and no case id of the log appears in Baton. The hash is written
//! in the letters `a`-`p` (a nibble each), never in digits: in hex, about
//! one case in 17 had 8 digits in a row, which ingest refuses as patient
//! data.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::eventlog::{CsvColumns, LogEvent};

/// The mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// What this mapping is for (printed, not used).
    #[serde(default)]
    pub description: String,
    /// Starts every hand-off id.
    pub id_prefix: String,
    /// Mixed into the case-id hash, so ids cannot be matched to the log's cases without it.
    #[serde(default)]
    pub salt: String,
    /// Columns, when the log is CSV.
    pub csv: Option<CsvColumns>,
    /// Names the importing system in each event's `actor`.
    #[serde(default = "default_actor")]
    pub actor: String,
    pub handoffs: Vec<HandoffRule>,
}

fn default_actor() -> String {
    "importer".into()
}

/// One kind of hand-off found in each case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffRule {
    /// Ends the hand-off id; a token.
    pub name: String,
    /// The activity that requests it (its first occurrence in the case).
    pub requested_by: String,
    /// The activities that complete it (the first at or after the request).
    pub completed_by: Vec<String>,
    pub kind: String,
    pub supplier: String,
    pub customer: String,
    /// routine, urgent or stat.
    pub priority: String,
    /// Attributes on REQUESTED (e.g. a test code a promise matches).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// A request never completed in the log: `skip` it (default), or leave it `open`.
    #[serde(default)]
    pub unmatched: Unmatched,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    #[default]
    Skip,
    Open,
}

/// A hand-off found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundHandoff {
    pub handoff_id: String,
    pub rule: usize,
    pub requested_ms: i64,
    pub completed_ms: Option<i64>,
}

impl Mapping {
    pub fn from_json(text: &str) -> anyhow::Result<Mapping> {
        let mapping: Mapping = serde_json::from_str(text)?;
        anyhow::ensure!(
            is_token(&mapping.id_prefix, 24),
            "id_prefix {:?}: letters, digits, - and _ only, at most 24",
            mapping.id_prefix
        );
        for (i, rule) in mapping.handoffs.iter().enumerate() {
            anyhow::ensure!(
                is_token(&rule.name, 24),
                "handoffs[{i}].name {:?}: letters, digits, - and _ only, at most 24",
                rule.name
            );
            anyhow::ensure!(
                !rule.completed_by.is_empty(),
                "handoffs[{i}].completed_by: name at least one activity"
            );
            // What ingest would refuse as patient data, refused before any is sent.
            let screened = [
                ("id_prefix and name", mapping.handoff_id("", rule)),
                ("actor", mapping.actor.clone()),
            ]
            .into_iter()
            .chain(
                rule.attributes
                    .iter()
                    .flat_map(|(k, v)| [("attributes", k.clone()), ("attributes", v.clone())]),
            );
            for (what, text) in screened {
                if let Some(finding) = baton_domain::privacy::screen(&text) {
                    anyhow::bail!(
                        "handoffs[{i}]: its {what} {}, which ingest refuses as patient data",
                        finding.describe()
                    );
                }
            }
        }
        Ok(mapping)
    }

    /// The hand-off id for a case and rule.
    pub fn handoff_id(&self, case: &str, rule: &HandoffRule) -> String {
        let hash = fnv1a(&self.salt, case);
        // 48 bits, a letter a-p for each nibble, most significant first.
        let letters: String = (0..12)
            .rev()
            .map(|nibble| char::from(b'a' + ((hash >> (4 * nibble)) & 0xf) as u8))
            .collect();
        format!("{}-{letters}-{}", self.id_prefix, rule.name)
    }

    /// Every hand-off in the log, by the pairing rule, in case order of
    /// first appearance.
    pub fn find(&self, events: &[LogEvent]) -> Vec<FoundHandoff> {
        let mut order: Vec<&str> = Vec::new();
        let mut cases: HashMap<&str, Vec<&LogEvent>> = HashMap::new();
        for event in events {
            cases
                .entry(&event.case)
                .or_insert_with(|| {
                    order.push(&event.case);
                    Vec::new()
                })
                .push(event);
        }
        let mut found = Vec::new();
        for case in order {
            let mut case_events = cases.remove(case).unwrap_or_default();
            // Stable: same-time events keep the log's order.
            case_events.sort_by_key(|e| e.at_ms);
            for (index, rule) in self.handoffs.iter().enumerate() {
                let Some(request) = case_events
                    .iter()
                    .position(|e| e.activity == rule.requested_by)
                else {
                    continue;
                };
                let requested_ms = case_events[request].at_ms;
                let completed_ms = case_events
                    .iter()
                    .filter(|e| e.at_ms >= requested_ms)
                    .find(|e| rule.completed_by.contains(&e.activity))
                    .map(|e| e.at_ms);
                if completed_ms.is_none() && rule.unmatched == Unmatched::Skip {
                    continue;
                }
                found.push(FoundHandoff {
                    handoff_id: self.handoff_id(case, rule),
                    rule: index,
                    requested_ms,
                    completed_ms,
                });
            }
        }
        found
    }
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// FNV-1a, 64 bits: stable across runs and machines (unlike std's hasher).
fn fnv1a(salt: &str, case: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes().chain([0u8]).chain(case.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Mapping {
        Mapping::from_json(include_str!("../../../deploy/import/sepsis.json"))
            .expect("deploy/import/sepsis.json")
    }

    fn event(case: &str, activity: &str, minute: i64) -> LogEvent {
        LogEvent {
            case: case.into(),
            activity: activity.into(),
            at_ms: 1_400_000_000_000 + minute * 60_000,
        }
    }

    #[test]
    fn first_request_then_first_completion_at_or_after_it() {
        let mapping = shipped();
        let log = [
            event("A", "ER Registration", 0),
            event("A", "IV Antibiotics", 5), // before triage: not the completion
            event("A", "ER Sepsis Triage", 10),
            event("A", "Leucocytes", 10),
            event("A", "ER Sepsis Triage", 20), // a second triage: not a new request
            event("A", "IV Antibiotics", 95),
            event("A", "IV Antibiotics", 100),
            event("B", "ER Sepsis Triage", 0), // never treated: skipped
            event("B", "ER Registration", 0),
            event("B", "CRP", 30),
        ];
        let found = mapping.find(&log);
        let named = |case: &str, name: &str| {
            let rule = mapping
                .handoffs
                .iter()
                .find(|r| r.name == name)
                .expect("rule");
            let id = mapping.handoff_id(case, rule);
            found.iter().find(|f| f.handoff_id == id).cloned()
        };
        let antibiotics = named("A", "antibiotics").expect("A's antibiotics");
        assert_eq!(
            antibiotics
                .completed_ms
                .map(|c| (c - antibiotics.requested_ms) / 60_000),
            Some(85)
        );
        let leucocytes = named("A", "leucocytes").expect("A's leucocytes");
        assert_eq!(
            leucocytes
                .completed_ms
                .map(|c| (c - leucocytes.requested_ms) / 60_000),
            Some(10)
        );
        assert!(named("B", "antibiotics").is_none());
        assert!(named("A", "crp").is_none());
        assert!(named("B", "crp").is_some());
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn ids_are_tokens_that_do_not_show_the_case_id() {
        let mapping = shipped();
        let rule = &mapping.handoffs[0];
        let id = mapping.handoff_id("NA", rule);
        assert!(is_token(&id, 64), "{id}");
        assert!(!id.contains("-NA-"));
        assert_eq!(id, mapping.handoff_id("NA", rule), "stable");
        assert_ne!(id, mapping.handoff_id("NB", rule));
    }

    /// Every id the import makes passes ingest's patient-data screen; in
    /// hex, about one case in 17 had 8 digits in a row and was refused.
    #[test]
    fn ids_of_many_cases_pass_the_patient_data_screen() {
        let mapping = shipped();
        for n in 0..20_000 {
            let case = format!("case-{n}");
            for rule in &mapping.handoffs {
                let id = mapping.handoff_id(&case, rule);
                assert!(is_token(&id, 64), "{id}");
                for text in [
                    id.clone(),
                    format!("{id}-requested"),
                    format!("{id}-completed"),
                ] {
                    assert_eq!(baton_domain::privacy::screen(&text), None, "{text}");
                }
            }
        }
    }

    #[test]
    fn a_mapping_whose_ids_look_like_patient_data_is_refused() {
        let text = include_str!("../../../deploy/import/sepsis.json")
            .replace("\"id_prefix\": \"sepsis\"", "\"id_prefix\": \"bsn\"");
        let err = Mapping::from_json(&text).expect_err("a label in the ids");
        assert!(err.to_string().contains("patient data"), "{err}");
    }

    #[test]
    fn a_mapping_with_an_id_that_is_not_a_token_is_refused() {
        let text = include_str!("../../../deploy/import/sepsis.json")
            .replace("\"id_prefix\": \"sepsis\"", "\"id_prefix\": \"sep sis\"");
        assert!(Mapping::from_json(&text).is_err());
        let unknown = include_str!("../../../deploy/import/sepsis.json")
            .replace("\"id_prefix\"", "\"id_prefx\"");
        assert!(Mapping::from_json(&unknown).is_err());
    }
}
