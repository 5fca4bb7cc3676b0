//! The subject scheme.
//!
//! | subject | stream | payload |
//! |---|---|---|
//! | `baton.handoff.<handoff_id>.<kind>.<supplier>.<customer>` | `BATON_HANDOFFS` | `baton.v1.HandoffEvent` |
//! | `baton.sla.breached.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.Breach` |
//! | `baton.sla.corrected.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.Breach` with `corrected` set |
//! | `baton.sla.warning.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.SlaWarning` |
//! | `baton.sla.escalated.<target>.<policy>.<supplier>.<customer>.<handoff_id>` | `BATON_SLA` | `baton.v1.Breach`, for the promise's escalation target |
//! | `baton.disruption.<supplier>.<disruption_id>` | `BATON_HANDOFFS` | `baton.v1.DisruptionEvent` |
//! | `baton.deadletter.<stream sequence>` | `BATON_DEADLETTER` | the bytes of a message on the events subjects that is not a Baton event, headers `Baton-Deadletter-Reason`, `Baton-Original-Subject`, `Baton-Original-Sequence` (found in a partition stream: `baton.deadletter.<stream>.<sequence>`) |
//! | `baton.part.<partition>.<handoff_id>.<kind>.<supplier>.<customer>` | `BATON_PARTITIONED_<n>`, `BATON_PARTITION_<n>_<p>` | `baton.v1.HandoffEvent`, copied by JetStream from `BATON_HANDOFFS` (see [`crate::partitions`]) |
//!
//! In SLA subjects, a clock's second and later cycles (after a reset) carry
//! the cycle after a colon, `<handoff_id>:<cycle>`: a colon is never part of
//! a token, so the subject stays unique per clock and one token long.
//!
//! `<supplier>` is the supplier at the time of the event: a REASSIGNED event
//! and everything after it are published under the new supplier, so a
//! supplier's subscription (`baton.handoff.*.*.<supplier>.*`) sees the
//! hand-offs that are now its own. One hand-off's events are always matched
//! by `baton.handoff.<handoff_id>.>` and are in order in the stream.
//!
//! The hand-off id comes first because every append is conditional on that
//! subject, and every uncached hand-off's history is read by it: with a
//! literal prefix nats-server finds the hand-off's subjects directly, where
//! `baton.handoff.*.*.*.<id>` made it walk every route (kind, supplier,
//! customer) in its subject tree on each append. In the bench, publishing
//! with the condition over the traffic's routes ran at 28k msg/s with the id
//! last and 44k (as fast as without a condition) with the id first.
//! Streams written with the id last (scheme 1) are refused, see
//! [`crate::streams`]. Every token is a subject-safe
//! [`Token`](baton_domain::Token), so no value can add a level or a wildcard.

use baton_domain::Token;

pub const EVENTS_STREAM: &str = "BATON_HANDOFFS";
pub const SLA_STREAM: &str = "BATON_SLA";
/// Messages on Baton's subjects that are not Baton events, parked.
pub const DEADLETTER_STREAM: &str = "BATON_DEADLETTER";
/// Every parked message.
pub const ALL_DEADLETTER: &str = "baton.deadletter.>";

/// Every hand-off event.
pub const ALL_EVENTS: &str = "baton.handoff.>";
/// Every disruption event.
pub const ALL_DISRUPTIONS: &str = "baton.disruption.>";
/// Prefixes that tell the two apart in the events stream.
pub const HANDOFF_PREFIX: &str = "baton.handoff.";
pub const DISRUPTION_PREFIX: &str = "baton.disruption.";
/// Every warning.
pub const ALL_WARNINGS: &str = "baton.sla.warning.>";
/// Every SLA signal.
pub const ALL_SLA: &str = "baton.sla.>";
/// Every breach announcement.
pub const ALL_BREACHES: &str = "baton.sla.breached.>";

/// The version of the hand-off subject layout, recorded on the events
/// stream (metadata [`SCHEME_KEY`]): 2 is the hand-off id first.
pub const SCHEME: &str = "2";
pub const SCHEME_KEY: &str = "baton-subject-scheme";

pub fn event(kind: &Token, supplier: &Token, customer: &Token, handoff_id: &Token) -> String {
    format!("baton.handoff.{handoff_id}.{kind}.{supplier}.{customer}")
}

/// Matches every event of one hand-off, whatever its supplier over time.
pub fn handoff_events(handoff_id: &Token) -> String {
    format!("baton.handoff.{handoff_id}.>")
}

/// Where the message at `sequence` of the events stream is parked; one of
/// a partition stream (see [`crate::partitions`]) goes under its stream's name.
pub fn deadletter(stream: &str, sequence: u64) -> String {
    if stream == EVENTS_STREAM {
        format!("baton.deadletter.{sequence}")
    } else {
        format!("baton.deadletter.{stream}.{sequence}")
    }
}

pub fn disruption(supplier: &Token, disruption_id: &Token) -> String {
    format!("baton.disruption.{supplier}.{disruption_id}")
}

/// One clock of one hand-off, as the SLA subjects name it: the promise, the
/// pair and the hand-off, with the cycle if not the first.
#[derive(Debug, Clone, Copy)]
pub struct ClockSubject<'a> {
    pub policy: &'a Token,
    pub supplier: &'a Token,
    pub customer: &'a Token,
    pub handoff_id: &'a Token,
    pub cycle: u32,
}

impl ClockSubject<'_> {
    fn tail(&self) -> String {
        let ClockSubject {
            policy,
            supplier,
            customer,
            handoff_id,
            cycle,
        } = self;
        if *cycle <= 1 {
            format!("{policy}.{supplier}.{customer}.{handoff_id}")
        } else {
            format!("{policy}.{supplier}.{customer}.{handoff_id}:{cycle}")
        }
    }

    pub fn breach(&self) -> String {
        format!("baton.sla.breached.{}", self.tail())
    }

    /// A correction: the announced breach on this subject's twin was a kept promise.
    pub fn correction(&self) -> String {
        format!("baton.sla.corrected.{}", self.tail())
    }

    pub fn warning(&self) -> String {
        format!("baton.sla.warning.{}", self.tail())
    }

    pub fn escalation(&self, target: &Token) -> String {
        format!("baton.sla.escalated.{target}.{}", self.tail())
    }
}

/// Breach announcements filtered by any of policy, supplier and customer.
pub fn breach_filter(
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    signal_filter("breached", policy, supplier, customer)
}

/// Warnings filtered by any of policy, supplier and customer.
pub fn warning_filter(
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    signal_filter("warning", policy, supplier, customer)
}

fn signal_filter(
    what: &str,
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    let part = |t: Option<&Token>| t.map(Token::as_str).unwrap_or("*").to_owned();
    format!(
        "baton.sla.{what}.{}.{}.{}.*",
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
            "baton.handoff.h1.repair.engineering.ward-5"
        );
        assert_eq!(handoff_events(&t("h1")), "baton.handoff.h1.>");
        let (p, s, c, h) = (t("repair-response"), t("engineering"), t("ward-5"), t("h1"));
        let mut clock = ClockSubject {
            policy: &p,
            supplier: &s,
            customer: &c,
            handoff_id: &h,
            cycle: 1,
        };
        assert_eq!(
            clock.breach(),
            "baton.sla.breached.repair-response.engineering.ward-5.h1"
        );
        assert_eq!(
            clock.escalation(&t("duty")),
            "baton.sla.escalated.duty.repair-response.engineering.ward-5.h1"
        );
        clock.cycle = 2;
        assert_eq!(
            clock.warning(),
            "baton.sla.warning.repair-response.engineering.ward-5.h1:2"
        );
        assert_eq!(
            disruption(&t("lab"), &t("analyzer-1")),
            "baton.disruption.lab.analyzer-1"
        );
        assert_eq!(
            breach_filter(None, Some(&t("lab")), None),
            "baton.sla.breached.*.lab.*.*"
        );
    }
}
