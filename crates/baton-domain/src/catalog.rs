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
    calendar::{Calendar, Interval, WorkingHours},
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
    /// The validated catalog could not be serialized to compute its
    /// version: without one, views built under another catalog would pass
    /// for current.
    #[error("catalog version cannot be computed: {message}")]
    Unversioned { message: String },
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
    /// Events that end the current cycle and start a new one (e.g. a consult
    /// REASSIGNED to another specialist restarts the response clock).
    pub reset: Vec<EventType>,
    /// Request attributes a hand-off must carry to be covered (e.g. a test code).
    pub matches: BTreeMap<String, String>,
    pub targets: BTreeMap<Priority, Duration>,
    /// Warn when this share of the target has run, in thousandths (800 = 0.8).
    pub warn_at_permille: Option<u16>,
    /// Who else hears of a breach (e.g. the duty coordinator): breaches are
    /// also published on `baton.sla.escalated.<target>...`.
    pub escalate_to: Option<Token>,
    /// The calendar's id; `None` is `always`.
    pub calendar_id: Option<Token>,
    /// How far back a live event may be dated and still be read as dated:
    /// one entered later is read as `recorded_at - max_entry_lag` (see
    /// [`crate::event::RecordedEvent::clock_time`]).
    pub max_entry_lag: Duration,
    /// When the clock runs.
    #[serde(skip)]
    pub calendar: Calendar,
}

impl Policy {
    /// Whether this promise applies to the hand-off as it stands (its clock
    /// runs only while it has a target for a priority the hand-off held).
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
            && self
                .matches
                .iter()
                .all(|(k, v)| handoff.attributes.get(k) == Some(v))
    }

    /// The time on the clock at which it warns, for `target`.
    pub fn warning_after(&self, target: Duration) -> Option<Duration> {
        self.warn_at_permille.map(|p| target * u32::from(p) / 1000)
    }

    pub fn target(&self, priority: Priority) -> Option<Duration> {
        self.targets.get(&priority).copied()
    }
}

/// How late a live event may be entered and still count by its own time,
/// when neither the promise nor the catalog says (`"max_entry_lag"`).
pub const DEFAULT_MAX_ENTRY_LAG: Duration = Duration::from_secs(5 * 60);

/// A validated catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub departments: Vec<Department>,
    pub kinds: Vec<Token>,
    pub promises: Vec<Policy>,
    /// Calendar definitions as written (their content is part of the version).
    pub calendars: Vec<CalendarDefinition>,
    /// The attribute keys events and disruption scopes may carry, when the
    /// catalog lists them (`"attributes": ["asset", "test"]`); `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeSet<String>>,
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
    #[serde(default)]
    calendars: Vec<CalendarDefinition>,
    /// The attribute keys events may carry; absent: any key.
    #[serde(default)]
    attributes: Option<Vec<String>>,
    /// Every promise's late-entry bound unless it gives its own.
    #[serde(default)]
    max_entry_lag: Option<String>,
}

/// A working-hours calendar as the catalog spells it:
/// `{"id": "office-hours", "time_zone": "Europe/Amsterdam",
///   "week": {"mon": ["08:00-17:00"], ...}, "holidays": ["2026-12-25"]}`.
/// Days not listed have no working hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarDefinition {
    pub id: String,
    pub time_zone: String,
    pub week: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

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
    #[serde(default)]
    reset: Vec<String>,
    #[serde(default, rename = "match")]
    matches: BTreeMap<String, String>,
    targets: BTreeMap<String, String>,
    #[serde(default)]
    warn_at: Option<f64>,
    #[serde(default)]
    escalate_to: Option<String>,
    #[serde(default)]
    calendar: Option<String>,
    #[serde(default)]
    max_entry_lag: Option<String>,
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

    fn calendar(
        &self,
        i: usize,
        def: &CalendarDefinition,
    ) -> Result<(Token, Calendar), CatalogError> {
        let at = |field: &str| format!("calendars[{i}].{field}");
        let id = self.token(at("id"), &def.id)?;
        let time_zone = jiff::tz::TimeZone::get(&def.time_zone).map_err(|_| {
            self.fail(
                at("time_zone"),
                format!(
                    "{:?} is not a time zone of the IANA database (e.g. \"Europe/Amsterdam\")",
                    def.time_zone
                ),
                &def.time_zone,
            )
        })?;
        let mut week: [Vec<Interval>; 7] = Default::default();
        for (day, spans) in &def.week {
            let index = WEEKDAYS.iter().position(|d| d == day).ok_or_else(|| {
                self.fail(
                    at("week"),
                    format!(
                        "{day:?} is not a day; expected one of {}",
                        WEEKDAYS.join(", ")
                    ),
                    day,
                )
            })?;
            for (j, span) in spans.iter().enumerate() {
                let path = format!("calendars[{i}].week.{day}[{j}]");
                let interval = parse_interval(span).ok_or_else(|| {
                    self.fail(
                        &path,
                        format!("{span:?} is not a span of the day like \"08:00-17:00\""),
                        span,
                    )
                })?;
                week[index].push(interval);
            }
            week[index].sort_unstable();
            if week[index].windows(2).any(|w| w[0].1 > w[1].0) {
                return Err(self.fail(format!("calendars[{i}].week.{day}"), "spans overlap", day));
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err(self.fail(
                at("week"),
                "must give working hours on at least one day",
                &def.id,
            ));
        }
        let mut holidays = BTreeSet::new();
        for (j, day) in def.holidays.iter().enumerate() {
            let date: jiff::civil::Date = day.parse().map_err(|_| {
                self.fail(
                    format!("calendars[{i}].holidays[{j}]"),
                    format!("{day:?} is not a date like \"2026-12-25\""),
                    day,
                )
            })?;
            holidays.insert(date);
        }
        Ok((
            id,
            Calendar::Working(WorkingHours {
                time_zone,
                week,
                holidays,
            }),
        ))
    }

    fn events(&self, path: &str, values: &[String]) -> Result<Vec<EventType>, CatalogError> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| self.event(format!("{path}[{i}]"), v))
            .collect()
    }
}

/// What a promise may refer to: the catalog's kinds, departments and
/// calendars, and the catalog-wide late-entry bound.
struct Known<'a> {
    kinds: &'a [Token],
    department_ids: &'a BTreeSet<Token>,
    calendars: &'a BTreeMap<Token, Calendar>,
    default_entry_lag: Duration,
}

impl Checker<'_> {
    fn departments(
        &self,
        raw: &[RawDepartment],
    ) -> Result<(Vec<Department>, BTreeSet<Token>), CatalogError> {
        let mut departments = Vec::new();
        let mut department_ids = BTreeSet::new();
        for (i, d) in raw.iter().enumerate() {
            let id = self.token(format_args!("departments[{i}].id"), &d.id)?;
            if !department_ids.insert(id.clone()) {
                return Err(self.fail(
                    format_args!("departments[{i}].id"),
                    format!("{:?} is listed twice", d.id),
                    &d.id,
                ));
            }
            if d.name.trim().is_empty() {
                return Err(self.fail(
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
        Ok((departments, department_ids))
    }

    fn kinds(&self, raw: &[String]) -> Result<Vec<Token>, CatalogError> {
        let mut kinds = Vec::new();
        for (i, k) in raw.iter().enumerate() {
            let kind = self.token(format_args!("kinds[{i}]"), k)?;
            if kinds.contains(&kind) {
                return Err(self.fail(
                    format_args!("kinds[{i}]"),
                    format!("{k:?} is listed twice"),
                    k,
                ));
            }
            kinds.push(kind);
        }
        Ok(kinds)
    }

    fn calendars(
        &self,
        raw: &[CalendarDefinition],
    ) -> Result<BTreeMap<Token, Calendar>, CatalogError> {
        let mut calendars: BTreeMap<Token, Calendar> = BTreeMap::new();
        for (i, def) in raw.iter().enumerate() {
            let (id, calendar) = self.calendar(i, def)?;
            if id.as_str() == "always" || calendars.insert(id, calendar).is_some() {
                return Err(self.fail(
                    format_args!("calendars[{i}].id"),
                    format!("{:?} is taken", def.id),
                    &def.id,
                ));
            }
        }
        Ok(calendars)
    }

    /// The catalog's attribute keys: tokens, each once, covering every key
    /// a promise matches on.
    fn attributes(
        &self,
        keys: &[String],
        promises: &[Policy],
    ) -> Result<BTreeSet<String>, CatalogError> {
        let mut set = BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            let token = self.token(format_args!("attributes[{i}]"), key)?;
            if !set.insert(token.to_string()) {
                return Err(self.fail(
                    format_args!("attributes[{i}]"),
                    format!("{key:?} is listed twice"),
                    key,
                ));
            }
        }
        for (i, policy) in promises.iter().enumerate() {
            if let Some(key) = policy.matches.keys().find(|k| !set.contains(*k)) {
                return Err(self.fail(
                    format_args!("promises[{i}].match"),
                    format!("{key:?} is not one of the catalog's attributes"),
                    key,
                ));
            }
        }
        Ok(set)
    }

    /// Promise `i`, checked against what the catalog knows.
    fn promise(&self, i: usize, p: &RawPromise, known: &Known<'_>) -> Result<Policy, CatalogError> {
        let at = |field: &str| format!("promises[{i}].{field}");
        let id = self.token(at("id"), &p.id)?;
        let kind = self.token(at("kind"), &p.kind)?;
        if !known.kinds.contains(&kind) {
            return Err(self.fail(
                at("kind"),
                format!("{:?} is not one of the catalog's kinds", p.kind),
                &p.kind,
            ));
        }
        let supplier = self.department(&at("supplier"), &p.supplier, known)?;
        let customer = self.department(&at("customer"), &p.customer, known)?;
        let events = self.clock_events(i, p)?;
        let mut matches = BTreeMap::new();
        for (key, value) in &p.matches {
            let key = self.token(format!("promises[{i}].match"), key)?;
            matches.insert(key.as_str().to_owned(), value.clone());
        }
        let warn_at_permille = match p.warn_at {
            None => None,
            Some(share) if share > 0.0 && share < 1.0 => {
                Some((share * 1000.0).round().clamp(1.0, 999.0) as u16)
            }
            Some(share) => {
                return Err(self.fail(
                    at("warn_at"),
                    format!("{share} is not a share of the target between 0 and 1 (e.g. 0.8)"),
                    &p.id,
                ))
            }
        };
        let escalate_to = p
            .escalate_to
            .as_deref()
            .map(|t| self.token(at("escalate_to"), t))
            .transpose()?;
        let targets = self.targets(i, p)?;
        let (calendar_id, calendar) = self.calendar_of(&at("calendar"), p, known)?;
        let max_entry_lag = match &p.max_entry_lag {
            None => known.default_entry_lag,
            Some(value) => {
                parse_duration(value).map_err(|e| self.fail(at("max_entry_lag"), e, value))?
            }
        };
        Ok(Policy {
            max_entry_lag,
            id,
            kind,
            supplier,
            customer,
            start: events.start,
            stop: events.stop,
            pause: events.pause,
            resume: events.resume,
            reset: events.reset,
            matches,
            targets,
            warn_at_permille,
            escalate_to,
            calendar_id,
            calendar,
        })
    }

    /// A promise's supplier or customer: one of the catalog's departments, if given.
    fn department(
        &self,
        path: &str,
        value: &Option<String>,
        known: &Known<'_>,
    ) -> Result<Option<Token>, CatalogError> {
        let Some(value) = value else { return Ok(None) };
        let id = self.token(path, value)?;
        if !known.department_ids.contains(&id) {
            return Err(self.fail(
                path,
                format!("{value:?} is not one of the catalog's departments"),
                value,
            ));
        }
        Ok(Some(id))
    }

    /// The events that start, stop, pause, resume and reset a promise's clock.
    fn clock_events(&self, i: usize, p: &RawPromise) -> Result<ClockEvents, CatalogError> {
        let at = |field: &str| format!("promises[{i}].{field}");
        let start = self.event(at("start"), &p.start)?;
        let stop = self.events(&at("stop"), &p.stop)?;
        if stop.is_empty() {
            return Err(self.fail(at("stop"), "must name at least one event", &p.id));
        }
        if stop.contains(&start) {
            return Err(self.fail(at("stop"), "must not contain the start event", &p.start));
        }
        let pause = self.events(&at("pause"), &p.pause)?;
        let resume = self.events(&at("resume"), &p.resume)?;
        if pause.is_empty() != resume.is_empty() {
            return Err(self.fail(
                at("resume"),
                "pause and resume must be given together",
                &p.id,
            ));
        }
        let reset = self.events(&at("reset"), &p.reset)?;
        if let Some(bad) = reset
            .iter()
            .find(|t| **t == start || stop.contains(t) || t.is_terminal())
        {
            return Err(self.fail(
                at("reset"),
                format!("{bad} cannot reset the clock: it starts, stops or ends it"),
                bad.name(),
            ));
        }
        for (field, events) in [
            ("start", std::slice::from_ref(&start)),
            ("stop", &stop[..]),
            ("pause", &pause[..]),
            ("resume", &resume[..]),
            ("reset", &reset[..]),
        ] {
            if let Some(bad) = events.iter().find(|t| t.moves_no_clock()) {
                let why = if bad.follows_the_end() {
                    "follows a completed hand-off"
                } else {
                    "is said about the hand-off, not done in it,"
                };
                return Err(self.fail(
                    at(field),
                    format!("{bad} {why} and moves no clock"),
                    bad.name(),
                ));
            }
        }
        Ok(ClockEvents {
            start,
            stop,
            pause,
            resume,
            reset,
        })
    }

    /// A promise's target per priority; at least one.
    fn targets(
        &self,
        i: usize,
        p: &RawPromise,
    ) -> Result<BTreeMap<Priority, Duration>, CatalogError> {
        let mut targets = BTreeMap::new();
        for (name, value) in &p.targets {
            let path = format!("promises[{i}].targets.{name}");
            let priority = Priority::from_name(name).ok_or_else(|| {
                self.fail(
                    &path,
                    format!("{name:?} is not a priority; expected routine, urgent or stat"),
                    name,
                )
            })?;
            let target = parse_duration(value).map_err(|e| self.fail(&path, e, value))?;
            targets.insert(priority, target);
        }
        if targets.is_empty() {
            return Err(self.fail(
                format!("promises[{i}].targets"),
                "must give a target for at least one priority",
                &p.id,
            ));
        }
        Ok(targets)
    }

    /// The calendar a promise's clock runs on: `always` unless it names one.
    fn calendar_of(
        &self,
        path: &str,
        p: &RawPromise,
        known: &Known<'_>,
    ) -> Result<(Option<Token>, Calendar), CatalogError> {
        match p.calendar.as_deref() {
            None | Some("always") => Ok((None, Calendar::Always)),
            Some(name) => {
                let id = self.token(path, name)?;
                let calendar = known.calendars.get(&id).cloned().ok_or_else(|| {
                    self.fail(
                        path,
                        format!("{name:?} is not one of the catalog's calendars (or \"always\")"),
                        name,
                    )
                })?;
                Ok((Some(id), calendar))
            }
        }
    }
}

/// A promise's clock events, checked.
struct ClockEvents {
    start: EventType,
    stop: Vec<EventType>,
    pause: Vec<EventType>,
    resume: Vec<EventType>,
    reset: Vec<EventType>,
}

/// A JSON file's syntax error without the line and column serde_json ends
/// its text with, for errors that name the place once, themselves (the
/// catalog's, and the gateway's and notify's files).
pub fn json_message(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let location = format!(" at line {} column {}", e.line(), e.column());
    message
        .strip_suffix(&location)
        .unwrap_or(&message)
        .to_owned()
}

impl Catalog {
    /// Parses and validates a catalog from its JSON text.
    pub fn from_json(source: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = serde_json::from_str(source).map_err(|e| CatalogError::Syntax {
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        let check = Checker { source };
        let (departments, department_ids) = check.departments(&raw.departments)?;
        let kinds = check.kinds(&raw.kinds)?;
        let calendars = check.calendars(&raw.calendars)?;
        let default_entry_lag = match &raw.max_entry_lag {
            None => DEFAULT_MAX_ENTRY_LAG,
            Some(value) => {
                parse_duration(value).map_err(|e| check.fail("max_entry_lag", e, value))?
            }
        };
        let known = Known {
            kinds: &kinds,
            department_ids: &department_ids,
            calendars: &calendars,
            default_entry_lag,
        };
        let mut promises: Vec<Policy> = Vec::new();
        for (i, p) in raw.promises.iter().enumerate() {
            if promises.iter().any(|q| q.id.as_str() == p.id) {
                return Err(check.fail(
                    format!("promises[{i}].id"),
                    format!("{:?} is used by an earlier promise", p.id),
                    &p.id,
                ));
            }
            promises.push(check.promise(i, p, &known)?);
        }
        let attributes = match &raw.attributes {
            None => None,
            Some(keys) => Some(check.attributes(keys, &promises)?),
        };
        let mut catalog = Catalog {
            departments,
            kinds,
            promises,
            calendars: raw.calendars,
            attributes,
            department_ids,
            version: String::new(),
        };
        catalog.version = fingerprint(&catalog)?;
        Ok(catalog)
    }

    /// A content hash of the validated catalog: views built under another
    /// version are out of date. Whitespace and key order do not change it.
    pub fn version(&self) -> &str {
        &self.version
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

/// `"08:00-17:00"` as minutes since midnight; `24:00` may end a span.
fn parse_interval(span: &str) -> Option<Interval> {
    let (start, end) = span.split_once('-')?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < end).then_some((start, end))
}

/// FNV-1a, 64 bit: a stable, dependency-free content hash (not for security).
/// A content hash of `value`'s canonical JSON.
fn fingerprint<T: Serialize>(value: &T) -> Result<String, CatalogError> {
    let canonical = serde_json::to_vec(value).map_err(|e| CatalogError::Unversioned {
        message: e.to_string(),
    })?;
    Ok(format!("{:016x}", fnv1a64(&canonical)))
}

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
    fn a_clock_is_not_moved_by_what_follows_a_completion() {
        for (field, from, to) in [
            (
                "stop",
                r#""stop": ["acknowledged"]"#,
                r#""stop": ["amended"]"#,
            ),
            ("start", r#""start": "requested""#, r#""start": "rated""#),
            (
                "stop",
                r#""stop": ["acknowledged"]"#,
                r#""stop": ["escalation_acknowledged"]"#,
            ),
            (
                "pause",
                r#""stop": ["acknowledged"]"#,
                r#""stop": ["acknowledged"], "pause": ["amended"], "resume": ["resumed"]"#,
            ),
        ] {
            let err = Catalog::from_json(&GOOD.replace(from, to)).expect_err(field);
            let text = err.to_string();
            assert!(
                text.contains(&format!("promises[0].{field}")) && text.contains("moves no clock"),
                "{text}"
            );
        }
    }

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
    fn a_catalog_that_cannot_be_hashed_has_no_version_rather_than_an_empty_one() {
        /// Serializes to a map with a non-string key, which JSON refuses.
        struct Unhashable;
        impl Serialize for Unhashable {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(&[1u8, 2], "value")?;
                map.end()
            }
        }
        assert!(matches!(
            fingerprint(&Unhashable),
            Err(CatalogError::Unversioned { .. })
        ));
        assert_eq!(
            fingerprint(&BTreeMap::from([("a", 1)])).map(|v| v.len()),
            Ok(16)
        );
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

    #[test]
    fn reads_resets_matches_warnings_and_escalations() {
        let rich = GOOD.replace(
            r#""targets": {"routine": "30m", "urgent": "15m", "stat": "5m"}}"#,
            r#""targets": {"routine": "30m"}, "reset": ["reassigned"], "match": {"test": "troponin"},
     "warn_at": 0.75, "escalate_to": "duty-coordinator"}"#,
        );
        let catalog = Catalog::from_json(&rich).expect("valid");
        let policy = catalog.policy("repair-response").expect("policy");
        assert_eq!(policy.reset, vec![EventType::Reassigned]);
        assert_eq!(policy.warn_at_permille, Some(750));
        assert_eq!(
            policy.warning_after(Duration::from_secs(1200)),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            policy.escalate_to.as_ref().map(Token::as_str),
            Some("duty-coordinator")
        );
        assert_eq!(
            policy.matches.get("test").map(String::as_str),
            Some("troponin")
        );
        let mut request = crate::event::tests::requested("h1", 0);
        let plain = Handoff::open(&request).expect("open");
        assert!(!policy.covers(&plain), "no test code, not covered");
        request.attributes.insert("test".into(), "troponin".into());
        assert!(policy.covers(&Handoff::open(&request).expect("open")));
        assert_eq!(
            invalid(&rich.replace("0.75", "1.5")).0,
            "promises[0].warn_at"
        );
        assert_eq!(
            invalid(&rich.replace(r#"["reassigned"]"#, r#"["acknowledged"]"#)).0,
            "promises[0].reset"
        );
        assert_eq!(
            invalid(&rich.replace("duty-coordinator", "duty coordinator")).0,
            "promises[0].escalate_to"
        );
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

    const WITH_CALENDAR: &str = r#"{
  "departments": [{"id": "cardiology", "name": "Cardiology"}, {"id": "dentistry", "name": "Dentistry"}],
  "kinds": ["consult"],
  "calendars": [
    {"id": "office-hours", "time_zone": "Europe/Amsterdam",
     "week": {"mon": ["08:00-12:00", "13:00-17:00"], "fri": ["08:00-17:00"]},
     "holidays": ["2026-12-25"]}
  ],
  "promises": [
    {"id": "consult-routine", "kind": "consult", "start": "requested", "stop": ["started"],
     "targets": {"routine": "8h"}, "calendar": "office-hours"}
  ]
}"#;

    #[test]
    fn promises_run_on_their_calendar() {
        let catalog = Catalog::from_json(WITH_CALENDAR).expect("valid");
        let policy = catalog.policy("consult-routine").expect("policy");
        assert_eq!(
            policy.calendar_id.as_ref().map(Token::as_str),
            Some("office-hours")
        );
        let Calendar::Working(hours) = &policy.calendar else {
            panic!("working hours")
        };
        assert_eq!(hours.week[0], vec![(480, 720), (780, 1020)]);
        assert!(hours.week[1].is_empty());
        let changed =
            Catalog::from_json(&WITH_CALENDAR.replace("\"13:00-17:00\"", "\"13:00-18:00\""))
                .expect("valid");
        assert_ne!(
            catalog.version(),
            changed.version(),
            "calendar content is part of the version"
        );
    }

    #[test]
    fn calendar_mistakes_are_named() {
        let bad = |from: &str, to: &str| invalid(&WITH_CALENDAR.replace(from, to)).0;
        assert_eq!(
            bad("Europe/Amsterdam", "Europe/Amsterdamm"),
            "calendars[0].time_zone"
        );
        assert_eq!(
            bad("\"08:00-17:00\"]", "\"17:00-08:00\"]"),
            "calendars[0].week.fri[0]"
        );
        assert_eq!(
            bad("\"13:00-17:00\"", "\"11:00-17:00\""),
            "calendars[0].week.mon"
        );
        assert_eq!(bad("\"mon\"", "\"monday\""), "calendars[0].week");
        assert_eq!(bad("2026-12-25", "2026-13-25"), "calendars[0].holidays[0]");
        assert_eq!(
            bad("\"calendar\": \"office-hours\"", "\"calendar\": \"office\""),
            "promises[0].calendar"
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_give_a_line() {
        let err =
            Catalog::from_json(&GOOD.replace("\"stop\"", "\"stpo\"")).expect_err("unknown field");
        assert!(matches!(err, CatalogError::Syntax { line: 9, .. }), "{err}");
        assert!(err.to_string().contains("stpo"), "{err}");
        assert_eq!(
            err.to_string().matches("line").count(),
            1,
            "one location: {err}"
        );
        let err = Catalog::from_json("{\n\"departments\": [,]}").expect_err("syntax");
        assert!(matches!(err, CatalogError::Syntax { line: 2, .. }), "{err}");
    }
}

#[cfg(test)]
mod attribute_list {
    use super::*;

    const BASE: &str = r#"{"departments": [{"id": "lab", "name": "Lab"}, {"id": "ward-5", "name": "Ward 5"}],
      "kinds": ["lab"], ATTRS
      "promises": [{"id": "troponin", "kind": "lab", "start": "requested", "stop": ["completed"],
                    "match": {"test": "troponin"}, "targets": {"stat": "1h"}}]}"#;

    fn with(attrs: &str) -> Result<Catalog, CatalogError> {
        Catalog::from_json(&BASE.replace("ATTRS", attrs))
    }

    #[test]
    fn the_list_is_optional_and_does_not_change_old_versions() {
        let without = with("").expect("valid");
        assert_eq!(without.attributes, None);
        let listed = with(r#""attributes": ["test", "asset"],"#).expect("valid");
        assert_eq!(
            listed.attributes,
            Some(["asset".to_owned(), "test".to_owned()].into())
        );
        assert_ne!(without.version(), listed.version());
        // A catalog without the list keeps the version it had before lists existed.
        assert!(!serde_json::to_string(&without)
            .expect("json")
            .contains("attributes"));
    }

    #[test]
    fn a_bad_list_is_refused() {
        let err = with(r#""attributes": ["asset", "asset"],"#).expect_err("twice");
        assert!(err.to_string().contains("attributes[1]"), "{err}");
        let err = with(r#""attributes": ["a b"],"#).expect_err("not a token");
        assert!(err.to_string().contains("attributes[0]"), "{err}");
        let err = with(r#""attributes": ["asset"],"#).expect_err("match key not listed");
        assert!(err.to_string().contains("promises[0].match"), "{err}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    #[test]
    fn the_shipped_catalogs_are_valid() {
        for (name, text) in [
            (
                "deploy/catalog.json",
                include_str!("../../../deploy/catalog.json"),
            ),
            (
                "deploy/demo-catalog.json",
                include_str!("../../../deploy/demo-catalog.json"),
            ),
        ] {
            let catalog = Catalog::from_json(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(catalog.policy("repair-response").is_some(), "{name}");
            assert!(catalog.policy("lab-turnaround").is_some(), "{name}");
            let routine = catalog.policy("consult-routine").expect("consult-routine");
            assert!(matches!(routine.calendar, Calendar::Working(_)), "{name}");
        }
    }
}
