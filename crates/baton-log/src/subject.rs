//! The subject scheme.
//!
//! | subject | stream | payload |
//! |---|---|---|
//! | `baton.handoff.<kind>.<supplier>.<customer>.<handoff_id>` | `BATON_HANDOFFS` | `baton.v1.HandoffEvent` |
//! | `baton.sla.breached.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.Breach` |
//! | `baton.sla.corrected.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.Breach` with `corrected` set |
//!
//! `<supplier>` is the supplier at the time of the event: a REASSIGNED event
//! and everything after it are published under the new supplier, so a
//! supplier's subscription sees the hand-offs that are now its own. One
//! hand-off's events are always matched by `baton.handoff.*.*.*.<handoff_id>`
//! and are in order in the stream. Every token is a subject-safe
//! [`Token`](baton_domain::Token), so no value can add a level or a wildcard.

use baton_domain::Token;

pub const EVENTS_STREAM: &str = "BATON_HANDOFFS";
pub const SLA_STREAM: &str = "BATON_SLA";

/// Every hand-off event.
pub const ALL_EVENTS: &str = "baton.handoff.>";
/// Every SLA signal.
pub const ALL_SLA: &str = "baton.sla.>";
/// Every breach announcement.
pub const ALL_BREACHES: &str = "baton.sla.breached.>";

pub fn event(kind: &Token, supplier: &Token, customer: &Token, handoff_id: &Token) -> String {
    format!("baton.handoff.{kind}.{supplier}.{customer}.{handoff_id}")
}

/// Matches every event of one hand-off, whatever its supplier over time.
pub fn handoff_events(handoff_id: &Token) -> String {
    format!("baton.handoff.*.*.*.{handoff_id}")
}

pub fn breach(policy: &Token, supplier: &Token, customer: &Token, handoff_id: &Token) -> String {
    format!("baton.sla.breached.{policy}.{supplier}.{customer}.{handoff_id}")
}

/// A correction: the announced breach on this subject's twin was a kept promise.
pub fn correction(
    policy: &Token,
    supplier: &Token,
    customer: &Token,
    handoff_id: &Token,
) -> String {
    format!("baton.sla.corrected.{policy}.{supplier}.{customer}.{handoff_id}")
}

/// Breach announcements filtered by any of policy, supplier and customer.
pub fn breach_filter(
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    let part = |t: Option<&Token>| t.map(Token::as_str).unwrap_or("*").to_owned();
    format!(
        "baton.sla.breached.{}.{}.{}.*",
        part(policy),
        part(supplier),
        part(customer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    #[test]
    fn subjects_follow_the_scheme() {
        assert_eq!(
            event(&t("repair"), &t("engineering"), &t("ward-5"), &t("h1")),
            "baton.handoff.repair.engineering.ward-5.h1"
        );
        assert_eq!(handoff_events(&t("h1")), "baton.handoff.*.*.*.h1");
        assert_eq!(
            breach(
                &t("repair-response"),
                &t("engineering"),
                &t("ward-5"),
                &t("h1")
            ),
            "baton.sla.breached.repair-response.engineering.ward-5.h1"
        );
        assert_eq!(
            breach_filter(None, Some(&t("lab")), None),
            "baton.sla.breached.*.lab.*.*"
        );
    }
}
