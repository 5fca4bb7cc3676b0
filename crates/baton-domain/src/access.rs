//! Who may append what: the caller registry and the authorization rules.
//!
//! A caller is a clinical system or an operator, known by the identity its
//! client certificate presents: the first of its DNS subject alternative
//! names that is registered, or, for a certificate with no DNS name at all,
//! its subject's common name (`baton_runtime::security` reads them). The registry (`deploy/callers.json`) gives each a
//! role and the departments it speaks for:
//!
//! ```json
//! {"callers": [
//!   {"id": "ward-5-system", "role": "department", "departments": ["ward-5"]},
//!   {"id": "lab-system", "role": "department", "departments": ["lab"]},
//!   {"id": "duty-desk", "role": "operator"}
//! ]}
//! ```
//!
//! Screens and scrapers hold a token instead of a certificate, and reach
//! only the HTTP side port: the registry keeps the SHA-256 of each token
//! (64 hex digits), never the token itself:
//!
//! ```json
//! {"id": "lab-wall", "role": "screen", "token_sha256": "9f86d0..."},
//! {"id": "prometheus", "role": "scraper", "token_sha256": "60303a..."}
//! ```
//!
//! A screen may see the board (after logging in with its token); a scraper
//! may only read `/metrics`. Neither is ever found by a certificate, so
//! neither can call the gRPC services.
//!
//! A `department` caller speaks for its departments on either side of a
//! hand-off: as the customer it may request, cancel, rate and reprioritize;
//! as the (current) supplier it may acknowledge, start, hold, resume,
//! complete, reject, reassign and reprioritize, and open and close
//! disruptions of that supplier. An `operator` may only read, change a
//! priority and acknowledge an escalation. An `importer`
//! may append anything (loading history); give it to no live system.
//!
//! Pure: the rules are decided from values, never from I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::{
    event::{EventType, Priority},
    id::Token,
};

/// What a caller is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A department's system: appends on behalf of its departments.
    Department,
    /// Reads; never appends.
    Operator,
    /// Appends for every department (history imports).
    Importer,
}

/// What a token holder is for: it reaches only the HTTP side port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// A wall screen: the board pages and `/events`, after logging in.
    Screen,
    /// A metrics scraper: `/metrics` only, with its token as a bearer token.
    Scraper,
}

/// A screen or scraper, known by the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    pub id: String,
    pub role: TokenRole,
    /// SHA-256 of the token; the token itself is kept nowhere.
    pub token_sha256: [u8; 32],
}

/// An authenticated caller, as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The certificate identity, recorded on every event it sends.
    pub id: String,
    pub role: Role,
    pub departments: BTreeSet<Token>,
}

/// Which side of a hand-off an event speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Customer,
    Supplier,
    Either,
    /// Neither department: the duty coordinator's desk.
    Operator,
}

/// The side of the hand-off that may send `event_type`. REPRIORITIZED is
/// `Either` when it raises the priority; lowering it is the customer's
/// (see [`Action`]).
pub fn side_of(event_type: EventType) -> Side {
    match event_type {
        EventType::Requested | EventType::Cancelled | EventType::Rated => Side::Customer,
        EventType::Acknowledged
        | EventType::Started
        | EventType::OnHold
        | EventType::Resumed
        | EventType::Completed
        | EventType::Rejected
        | EventType::Reassigned
        | EventType::Amended => Side::Supplier,
        EventType::Reprioritized => Side::Either,
        EventType::EscalationAcknowledged => Side::Operator,
    }
}

/// Who is asking, as far as a hand-off is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// A department caller speaking for the hand-off's customer.
    Customer,
    /// A department caller speaking for its current supplier.
    Supplier,
    /// An operator (the duty coordinator's desk).
    Operator,
    /// An importer loading history.
    Importer,
}

/// What is asked: an event, with a priority change split by direction,
/// or a disruption of the supplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Event(EventType),
    /// REPRIORITIZED to a more urgent priority.
    Raise,
    /// REPRIORITIZED to a less urgent one.
    Lower,
    /// Opening or closing a disruption of the supplier.
    Disrupt,
}

impl Action {
    /// The action an event asks for, against the hand-off's priority now.
    pub fn of(event_type: EventType, current: Priority, new: Option<Priority>) -> Action {
        match (event_type, new) {
            (EventType::Reprioritized, Some(new)) if new < current => Action::Lower,
            (EventType::Reprioritized, _) => Action::Raise,
            (t, _) => Action::Event(t),
        }
    }
}

/// The table of who may do what: the one rule ingest applies, written out
/// in the security docs. The measured supplier can never lower a priority
/// (it would loosen its own promise); an operator may only change one.
pub fn allowed(party: Party, action: Action) -> bool {
    match party {
        Party::Importer => true,
        Party::Operator => matches!(
            action,
            Action::Raise | Action::Lower | Action::Event(EventType::EscalationAcknowledged)
        ),
        Party::Customer => match action {
            Action::Raise | Action::Lower => true,
            Action::Disrupt => false,
            Action::Event(t) => side_of(t) == Side::Customer,
        },
        Party::Supplier => match action {
            Action::Raise | Action::Disrupt => true,
            Action::Lower => false,
            Action::Event(t) => side_of(t) == Side::Supplier,
        },
    }
}

/// Why a caller may not do what it asked. The message names the caller and
/// the department, never anything the event carried besides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "caller {caller} is read-only but for priorities and escalations: an operator may only raise or lower a hand-off's priority or acknowledge its escalation"
    )]
    ReadOnly { caller: String },
    #[error(
        "caller {caller} may not acknowledge an escalation: only an operator (the duty coordinator's desk) may"
    )]
    OperatorOnly { caller: String },
    #[error(
        "caller {caller} may not append {event} as {side} {department}: it speaks for {speaks_for}"
    )]
    NotItsDepartment {
        caller: String,
        event: EventType,
        side: &'static str,
        department: Token,
        speaks_for: String,
    },
    #[error(
        "caller {caller} may not lower the priority of a hand-off its department {supplier} \
         supplies: only the customer ({customer}) or an operator may lower it"
    )]
    LowerOwnPriority {
        caller: String,
        supplier: Token,
        customer: Token,
    },
    #[error("caller {caller} may not load history (backfill): only an importer may")]
    NotAnImporter { caller: String },
    #[error("caller {caller} is not in the caller registry")]
    Unregistered { caller: String },
}

impl Caller {
    fn speaks_for(&self, department: &Token) -> bool {
        self.role == Role::Importer
            || (self.role == Role::Department && self.departments.contains(department))
    }

    fn departments_text(&self) -> String {
        if self.departments.is_empty() {
            return "no department".into();
        }
        self.departments
            .iter()
            .map(Token::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parties this caller is on a hand-off between `supplier` and
    /// `customer` (a department may supply and be served at once).
    fn parties(&self, supplier: &Token, customer: &Token) -> Vec<Party> {
        match self.role {
            Role::Importer => vec![Party::Importer],
            Role::Operator => vec![Party::Operator],
            Role::Department => {
                let mut parties = Vec::new();
                if self.speaks_for(customer) {
                    parties.push(Party::Customer);
                }
                if self.speaks_for(supplier) {
                    parties.push(Party::Supplier);
                }
                parties
            }
        }
    }

    /// May this caller do `action` on a hand-off whose supplier (before
    /// this event) and customer are the given ones? For REQUESTED they are
    /// the event's own.
    pub fn may(&self, action: Action, supplier: &Token, customer: &Token) -> Result<(), Denied> {
        let parties = self.parties(supplier, customer);
        if parties.iter().any(|p| allowed(*p, action)) {
            return Ok(());
        }
        let caller = self.id.clone();
        let event = match action {
            Action::Event(t) => t,
            Action::Raise | Action::Lower => EventType::Reprioritized,
            Action::Disrupt => EventType::Started,
        };
        Err(match (self.role, action) {
            (Role::Operator, _) => Denied::ReadOnly { caller },
            (_, Action::Event(t)) if side_of(t) == Side::Operator => {
                Denied::OperatorOnly { caller }
            }
            (_, Action::Lower) if parties.contains(&Party::Supplier) => Denied::LowerOwnPriority {
                caller,
                supplier: supplier.clone(),
                customer: customer.clone(),
            },
            (_, Action::Disrupt) => Denied::NotItsDepartment {
                caller,
                event,
                side: "disrupted supplier",
                department: supplier.clone(),
                speaks_for: self.departments_text(),
            },
            (_, Action::Event(t)) if side_of(t) == Side::Supplier => Denied::NotItsDepartment {
                caller,
                event,
                side: "supplier",
                department: supplier.clone(),
                speaks_for: self.departments_text(),
            },
            _ => Denied::NotItsDepartment {
                caller,
                event,
                side: "customer",
                department: customer.clone(),
                speaks_for: self.departments_text(),
            },
        })
    }

    /// May this caller append `event_type` to a hand-off whose supplier
    /// (before this event) and customer are the given ones? A priority
    /// change counts as raising it; see [`Caller::may`] for lowering.
    pub fn may_append(
        &self,
        event_type: EventType,
        supplier: &Token,
        customer: &Token,
    ) -> Result<(), Denied> {
        self.may(
            Action::of(event_type, Priority::Routine, None),
            supplier,
            customer,
        )
    }

    /// May this caller open or close a disruption of `supplier`?
    pub fn may_disrupt(&self, supplier: &Token) -> Result<(), Denied> {
        self.may(Action::Disrupt, supplier, supplier)
    }

    /// May this caller load history (events judged by their own time,
    /// paging nobody)? Only an importer.
    pub fn may_backfill(&self) -> Result<(), Denied> {
        match self.role {
            Role::Importer => Ok(()),
            _ => Err(Denied::NotAnImporter {
                caller: self.id.clone(),
            }),
        }
    }
}

/// Why a registry file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("callers[{index}]: {reason}")]
    Invalid { index: usize, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    callers: Vec<RawCaller>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    id: String,
    role: RawRole,
    #[serde(default)]
    departments: Vec<String>,
    token_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawRole {
    Department,
    Operator,
    Importer,
    Screen,
    Scraper,
}

/// Every known caller, by certificate identity, and every token holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    callers: BTreeMap<String, Caller>,
    holders: BTreeMap<String, TokenHolder>,
}

/// 64 hex digits as 32 bytes.
fn sha256_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

/// A caller known by its certificate: a department's system (speaking for
/// catalog departments), an operator or an importer (speaking for none).
fn certified_caller(
    c: RawCaller,
    is_department: &impl Fn(&Token) -> bool,
) -> Result<Caller, String> {
    if c.token_sha256.is_some() {
        return Err(
            "token_sha256: only a screen or scraper has a token; this caller is known by its certificate".into(),
        );
    }
    let role = match c.role {
        RawRole::Department => Role::Department,
        RawRole::Operator => Role::Operator,
        _ => Role::Importer,
    };
    let mut departments = BTreeSet::new();
    for d in &c.departments {
        let token = Token::parse(d).map_err(|e| format!("department {e}"))?;
        if !is_department(&token) {
            return Err(format!("{d:?} is not a department in the catalog"));
        }
        departments.insert(token);
    }
    match role {
        Role::Department if departments.is_empty() => {
            return Err("a department caller needs departments".into())
        }
        Role::Operator | Role::Importer if !departments.is_empty() => {
            return Err("only a department caller lists departments".into())
        }
        _ => {}
    }
    Ok(Caller {
        id: c.id,
        role,
        departments,
    })
}

impl Registry {
    /// Parses a registry. `is_department` says which department ids exist
    /// (the catalog's), so a misspelt department is an error at start, not a
    /// caller that can never append.
    pub fn from_json(
        source: &str,
        is_department: impl Fn(&Token) -> bool,
    ) -> Result<Registry, RegistryError> {
        let raw: RawRegistry = serde_json::from_str(source).map_err(|e| RegistryError::Syntax {
            line: e.line(),
            message: e.to_string(),
        })?;
        let mut registry = Registry::default();
        for (index, c) in raw.callers.into_iter().enumerate() {
            registry
                .add(c, &is_department)
                .map_err(|reason| RegistryError::Invalid { index, reason })?;
        }
        Ok(registry)
    }

    /// Adds one caller of the file, or says why it is refused.
    fn add(&mut self, c: RawCaller, is_department: &impl Fn(&Token) -> bool) -> Result<(), String> {
        if c.id.is_empty() || c.id.len() > 253 || !c.id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("id must be 1 to 253 printable ASCII characters".into());
        }
        if self.callers.contains_key(&c.id) || self.holders.contains_key(&c.id) {
            return Err(format!("{:?} is listed twice", c.id));
        }
        let token_role = match c.role {
            RawRole::Screen => Some(TokenRole::Screen),
            RawRole::Scraper => Some(TokenRole::Scraper),
            _ => None,
        };
        match token_role {
            Some(role) => {
                let holder = self.token_holder(c, role)?;
                self.holders.insert(holder.id.clone(), holder);
            }
            None => {
                let caller = certified_caller(c, is_department)?;
                self.callers.insert(caller.id.clone(), caller);
            }
        }
        Ok(())
    }

    /// A screen or scraper: known by its own token's hash, speaking for no
    /// department.
    fn token_holder(&self, c: RawCaller, role: TokenRole) -> Result<TokenHolder, String> {
        if !c.departments.is_empty() {
            return Err("only a department caller lists departments".into());
        }
        let Some(hex) = &c.token_sha256 else {
            return Err("token_sha256: a screen or scraper needs the SHA-256 of its token".into());
        };
        let token_sha256 = sha256_hex(&hex.to_ascii_lowercase()).ok_or_else(|| {
            "token_sha256: must be 64 hex digits, the SHA-256 of the token (batonctl token hash)"
                .to_owned()
        })?;
        if let Some(other) = self
            .holders
            .values()
            .find(|h| h.token_sha256 == token_sha256)
        {
            return Err(format!(
                "token_sha256: the same token as {:?}; each screen and scraper needs its own",
                other.id
            ));
        }
        Ok(TokenHolder {
            id: c.id,
            role,
            token_sha256,
        })
    }

    /// The caller the first registered of `identities` names, or why none
    /// does (naming the first identity). For a certificate the identities
    /// are its DNS subject alternative names, or only its common name when
    /// it has none: never both. Screens and scrapers are never found here:
    /// they have no certificate.
    pub fn identify<'a>(
        &self,
        identities: impl IntoIterator<Item = &'a str>,
    ) -> Result<&Caller, Denied> {
        let mut first = None;
        for identity in identities {
            if let Some(caller) = self.callers.get(identity) {
                return Ok(caller);
            }
            first.get_or_insert_with(|| identity.to_owned());
        }
        Err(Denied::Unregistered {
            caller: first.unwrap_or_else(|| "(no identity in the certificate)".into()),
        })
    }

    /// The screen or scraper called `id`.
    pub fn holder(&self, id: &str) -> Option<&TokenHolder> {
        self.holders.get(id)
    }

    /// Every screen and scraper (to compare a token's hash against each).
    pub fn holders(&self) -> impl Iterator<Item = &TokenHolder> {
        self.holders.values()
    }

    /// Callers known by certificate, and token holders.
    pub fn len(&self) -> usize {
        self.callers.len() + self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.callers.is_empty() && self.holders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    const REGISTRY: &str = r#"{"callers": [
        {"id": "ward-5-system", "role": "department", "departments": ["ward-5"]},
        {"id": "lab-system", "role": "department", "departments": ["lab"]},
        {"id": "engineering-desk", "role": "department", "departments": ["engineering", "ward-6"]},
        {"id": "duty-desk", "role": "operator"},
        {"id": "history-import", "role": "importer"}
    ]}"#;

    fn registry() -> Registry {
        let departments = ["ward-5", "ward-6", "lab", "engineering"];
        Registry::from_json(REGISTRY, |d| departments.contains(&d.as_str())).expect("valid")
    }

    fn caller(id: &str) -> Caller {
        registry().identify([id]).expect("registered").clone()
    }

    #[test]
    fn a_ward_requests_cancels_and_rates_only_as_itself() {
        let ward = caller("ward-5-system");
        for t_ in [EventType::Requested, EventType::Cancelled, EventType::Rated] {
            assert_eq!(ward.may_append(t_, &t("lab"), &t("ward-5")), Ok(()));
            let denied = ward
                .may_append(t_, &t("lab"), &t("ward-6"))
                .expect_err("not its ward");
            assert!(
                denied.to_string().contains("as customer ward-6"),
                "{denied}"
            );
        }
        // The ward cannot do the lab's part of its own hand-off.
        for t_ in [
            EventType::Acknowledged,
            EventType::Started,
            EventType::OnHold,
            EventType::Resumed,
            EventType::Completed,
            EventType::Rejected,
            EventType::Reassigned,
        ] {
            assert!(
                ward.may_append(t_, &t("lab"), &t("ward-5")).is_err(),
                "{t_}"
            );
        }
    }

    #[test]
    fn the_lab_works_only_on_hand_offs_it_supplies() {
        let lab = caller("lab-system");
        for t_ in [
            EventType::Acknowledged,
            EventType::Started,
            EventType::Completed,
            EventType::Rejected,
            EventType::Reassigned,
        ] {
            assert_eq!(lab.may_append(t_, &t("lab"), &t("ward-5")), Ok(()));
            assert!(lab.may_append(t_, &t("engineering"), &t("ward-5")).is_err());
        }
        assert!(lab
            .may_append(EventType::Requested, &t("lab"), &t("ward-5"))
            .is_err());
        assert_eq!(lab.may_disrupt(&t("lab")), Ok(()));
        assert!(lab.may_disrupt(&t("engineering")).is_err());
    }

    #[test]
    fn either_side_may_reprioritize() {
        let ward = caller("ward-5-system");
        let lab = caller("lab-system");
        let eng = caller("engineering-desk");
        assert_eq!(
            ward.may_append(EventType::Reprioritized, &t("lab"), &t("ward-5")),
            Ok(())
        );
        assert_eq!(
            lab.may_append(EventType::Reprioritized, &t("lab"), &t("ward-5")),
            Ok(())
        );
        assert!(eng
            .may_append(EventType::Reprioritized, &t("lab"), &t("ward-5"))
            .is_err());
    }

    #[test]
    fn operators_only_change_priorities_and_acknowledge_escalations_and_importers_append_anything()
    {
        let operator = caller("duty-desk");
        let importer = caller("history-import");
        for t_ in EventType::ALL {
            let answer = operator.may_append(t_, &t("lab"), &t("ward-5"));
            if matches!(
                t_,
                EventType::Reprioritized | EventType::EscalationAcknowledged
            ) {
                assert_eq!(answer, Ok(()));
            } else {
                assert!(matches!(answer, Err(Denied::ReadOnly { .. })), "{t_}");
            }
            assert_eq!(importer.may_append(t_, &t("lab"), &t("ward-5")), Ok(()));
        }
        assert_eq!(operator.may(Action::Lower, &t("lab"), &t("ward-5")), Ok(()));
        assert!(operator.may_disrupt(&t("lab")).is_err());
        assert!(operator.may_backfill().is_err());
        assert_eq!(importer.may_backfill(), Ok(()));
        assert!(caller("lab-system").may_backfill().is_err());
        // Neither department acknowledges an escalation of its own hand-off.
        for department in ["lab-system", "ward-5-system"] {
            let answer = caller(department).may_append(
                EventType::EscalationAcknowledged,
                &t("lab"),
                &t("ward-5"),
            );
            assert!(
                matches!(answer, Err(Denied::OperatorOnly { .. })),
                "{department}: {answer:?}"
            );
        }
    }

    #[test]
    fn only_the_customer_or_an_operator_may_lower_a_priority() {
        let (lab, ward) = (t("lab"), t("ward-5"));
        assert_eq!(
            caller("ward-5-system").may(Action::Lower, &lab, &ward),
            Ok(())
        );
        let denied = caller("lab-system")
            .may(Action::Lower, &lab, &ward)
            .expect_err("the measured supplier");
        assert!(
            matches!(denied, Denied::LowerOwnPriority { .. }),
            "{denied}"
        );
        assert!(
            denied.to_string().contains("only the customer (ward-5)"),
            "{denied}"
        );
        assert_eq!(caller("lab-system").may(Action::Raise, &lab, &ward), Ok(()));
        assert_eq!(
            Action::of(
                EventType::Reprioritized,
                Priority::Stat,
                Some(Priority::Routine)
            ),
            Action::Lower
        );
        assert_eq!(
            Action::of(
                EventType::Reprioritized,
                Priority::Routine,
                Some(Priority::Urgent)
            ),
            Action::Raise
        );
    }

    #[test]
    fn identify_tries_every_identity_and_names_the_first() {
        let registry = registry();
        assert_eq!(
            registry
                .identify(["unknown.example", "lab-system"])
                .map(|c| c.id.as_str()),
            Ok("lab-system")
        );
        assert_eq!(
            registry.identify(["stranger"]),
            Err(Denied::Unregistered {
                caller: "stranger".into()
            })
        );
        assert!(registry.identify([]).is_err());
    }

    #[test]
    fn a_bad_registry_is_refused_with_its_place() {
        let any = |_: &Token| true;
        let none = |_: &Token| false;
        let err = |json: &str, known: &dyn Fn(&Token) -> bool| {
            Registry::from_json(json, known)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(r#"{"callers": [{"id": "a", "role": "god"}]}"#, &any).contains("line"));
        assert!(err(
            r#"{"callers": [{"id": "a", "role": "department", "departments": ["x"]}]}"#,
            &none
        )
        .contains("callers[0]: \"x\" is not a department"));
        assert!(
            err(r#"{"callers": [{"id": "a", "role": "department"}]}"#, &any)
                .contains("needs departments")
        );
        assert!(err(
            r#"{"callers": [{"id": "a", "role": "operator"}, {"id": "a", "role": "operator"}]}"#,
            &any
        )
        .contains("callers[1]"));
        assert!(
            err(r#"{"callers": [{"id": "a b", "role": "operator"}]}"#, &any).contains("printable")
        );
        assert!(err(
            r#"{"callers": [{"id": "a", "role": "operator", "departmnts": []}]}"#,
            &any
        )
        .contains("line"));
    }

    /// Two made-up token hashes (64 hex digits each).
    const WALL: &str = "1d5b6fb42b5d2a2b2a1b8e2d3e6f9d1c0b7a6e5d4c3b2a1908f7e6d5c4b3a291";
    const SCRAPER: &str = "2E5B6FB42B5D2A2B2A1B8E2D3E6F9D1C0B7A6E5D4C3B2A1908F7E6D5C4B3A291";

    #[test]
    fn screens_and_scrapers_are_known_by_their_token_hash_never_by_a_certificate() {
        let json = format!(
            r#"{{"callers": [
                {{"id": "duty-desk", "role": "operator"}},
                {{"id": "lab-wall", "role": "screen", "token_sha256": "{WALL}"}},
                {{"id": "prometheus", "role": "scraper", "token_sha256": "{SCRAPER}"}}
            ]}}"#
        );
        let registry = Registry::from_json(&json, |_| true).expect("valid");
        assert_eq!(registry.len(), 3);
        let wall = registry.holder("lab-wall").expect("the screen");
        assert_eq!(wall.role, TokenRole::Screen);
        assert_eq!(wall.token_sha256[0], 0x1d);
        assert_eq!(wall.token_sha256[31], 0x91);
        // Upper-case hex digits are the same hash.
        assert_eq!(
            registry.holder("prometheus").expect("scraper").token_sha256[0],
            0x2e
        );
        assert_eq!(registry.holders().count(), 2);
        // A certificate naming a screen is no caller of the gRPC services.
        assert!(registry.identify(["lab-wall"]).is_err());
        assert!(registry.identify(["duty-desk"]).is_ok());
        assert!(registry.holder("duty-desk").is_none());
    }

    #[test]
    fn a_bad_token_entry_is_refused_naming_its_place_and_field() {
        let err = |entries: &str| {
            Registry::from_json(&format!(r#"{{"callers": [{entries}]}}"#), |_| true)
                .expect_err("refused")
                .to_string()
        };
        let e = err(r#"{"id": "wall", "role": "screen"}"#);
        assert!(e.starts_with("callers[0]: token_sha256:"), "{e}");
        let e = err(r#"{"id": "wall", "role": "screen", "token_sha256": "abc"}"#);
        assert!(
            e.starts_with("callers[0]: token_sha256:") && e.contains("64 hex digits"),
            "{e}"
        );
        let not_hex = "g".repeat(64);
        let e = err(&format!(
            r#"{{"id": "wall", "role": "screen", "token_sha256": "{not_hex}"}}"#
        ));
        assert!(e.contains("64 hex digits"), "{e}");
        let e = err(&format!(
            r#"{{"id": "desk", "role": "operator"}}, {{"id": "desk", "role": "operator", "token_sha256": "{WALL}"}}"#
        ));
        assert!(e.starts_with("callers[1]:"), "{e}");
        let e = err(&format!(
            r#"{{"id": "desk", "role": "operator", "token_sha256": "{WALL}"}}"#
        ));
        assert!(
            e.starts_with("callers[0]: token_sha256: only a screen or scraper"),
            "{e}"
        );
        let e = err(&format!(
            r#"{{"id": "a", "role": "screen", "token_sha256": "{WALL}"}}, {{"id": "b", "role": "scraper", "token_sha256": "{WALL}"}}"#
        ));
        assert!(
            e.starts_with("callers[1]: token_sha256: the same token as \"a\""),
            "{e}"
        );
        let e = err(&format!(
            r#"{{"id": "a", "role": "screen", "token_sha256": "{WALL}", "departments": ["lab"]}}"#
        ));
        assert!(e.contains("only a department caller"), "{e}");
        // A screen and a certificate caller may not share an id.
        let e = err(&format!(
            r#"{{"id": "a", "role": "operator"}}, {{"id": "a", "role": "screen", "token_sha256": "{WALL}"}}"#
        ));
        assert!(e.contains("callers[1]: \"a\" is listed twice"), "{e}");
        // Unknown fields are refused with their line.
        let e = err(r#"{"id": "a", "role": "screen", "token": "plain"}"#);
        assert!(
            e.starts_with("line 1:") && e.contains("unknown field"),
            "{e}"
        );
    }
}
