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
//! customer) in its subject tree on each append. With the id first a
//! conditional publish costs what an unconditional one does
//! (bench/HISTORY.md, "Design choices the bench decided").
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
/// Where parked messages are.
pub const DEADLETTER_PREFIX: &str = "baton.deadletter.";

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
        self.signal(Signal::Breached)
    }

    /// A correction: the announced breach on this subject's twin was a kept promise.
    pub fn correction(&self) -> String {
        self.signal(Signal::Corrected)
    }

    pub fn warning(&self) -> String {
        self.signal(Signal::Warning)
    }

    /// The breach's escalation was acknowledged (who and when in the payload).
    pub fn acknowledgement(&self) -> String {
        self.signal(Signal::Acknowledged)
    }

    pub fn escalation(&self, target: &Token) -> String {
        format!("{}{target}.{}", Signal::Escalated.prefix(), self.tail())
    }

    fn signal(&self, signal: Signal) -> String {
        format!("{}{}", signal.prefix(), self.tail())
    }
}

/// The SLA signals, each a family of subjects under `baton.sla.`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Breached,
    Corrected,
    Warning,
    /// A breach, again, for the promise's escalation target (the subject
    /// carries the target before the clock).
    Escalated,
    /// A breach whose escalation someone acknowledged.
    Acknowledged,
}

impl Signal {
    const ALL: [Signal; 5] = [
        Signal::Breached,
        Signal::Corrected,
        Signal::Warning,
        Signal::Escalated,
        Signal::Acknowledged,
    ];

    /// `baton.sla.<signal>.`
    pub const fn prefix(self) -> &'static str {
        match self {
            Signal::Breached => "baton.sla.breached.",
            Signal::Corrected => "baton.sla.corrected.",
            Signal::Warning => "baton.sla.warning.",
            Signal::Escalated => "baton.sla.escalated.",
            Signal::Acknowledged => "baton.sla.acknowledged.",
        }
    }
}

/// What a message on one of Baton's subjects is, read from its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic<'a> {
    /// A hand-off event (`baton.v1.HandoffEvent`).
    Event,
    /// A disruption (`baton.v1.DisruptionEvent`).
    Disruption,
    /// A breach, correction or warning (`baton.v1.Breach`, `baton.v1.SlaWarning`).
    Signal(Signal),
    /// A breach for an escalation target (`baton.v1.Breach`).
    Escalation { target: &'a str },
    /// A parked message that is not Baton's.
    Deadletter,
}

/// The topic of `subject`, or `None` when it is not one of Baton's.
pub fn topic(subject: &str) -> Option<Topic<'_>> {
    if subject.starts_with(HANDOFF_PREFIX) {
        return Some(Topic::Event);
    }
    if subject.starts_with(DISRUPTION_PREFIX) {
        return Some(Topic::Disruption);
    }
    if subject.starts_with(DEADLETTER_PREFIX) {
        return Some(Topic::Deadletter);
    }
    let signal = Signal::ALL
        .into_iter()
        .find(|signal| subject.starts_with(signal.prefix()))?;
    if signal == Signal::Escalated {
        let rest = &subject[signal.prefix().len()..];
        let target = rest.split('.').next().unwrap_or_default();
        return Some(Topic::Escalation { target });
    }
    Some(Topic::Signal(signal))
}

/// `token`, or the wildcard `*` for "any".
fn or_any(token: Option<&Token>) -> &str {
    token.map(Token::as_str).unwrap_or("*")
}

/// Hand-off events filtered by their current supplier and customer.
pub fn events_filter(supplier: Option<&Token>, customer: Option<&Token>) -> String {
    format!(
        "{HANDOFF_PREFIX}*.*.{}.{}",
        or_any(supplier),
        or_any(customer)
    )
}

/// Disruptions filtered by supplier.
pub fn disruptions_filter(supplier: Option<&Token>) -> String {
    format!("{DISRUPTION_PREFIX}{}.*", or_any(supplier))
}

/// Breach announcements filtered by any of policy, supplier and customer.
pub fn breach_filter(
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    signal_filter(Some(Signal::Breached), policy, supplier, customer)
}

/// Warnings filtered by any of policy, supplier and customer.
pub fn warning_filter(
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    signal_filter(Some(Signal::Warning), policy, supplier, customer)
}

/// One signal (any but escalations, whose subjects carry a target first;
/// see [`escalation_filter`]) or, with `None`, every breach, correction and
/// warning, filtered by any of policy, supplier and customer.
pub fn signal_filter(
    signal: Option<Signal>,
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    let prefix = signal.map_or("baton.sla.*.", Signal::prefix);
    format!(
        "{prefix}{}.{}.{}.*",
        or_any(policy),
        or_any(supplier),
        or_any(customer)
    )
}

/// Escalations filtered by any of target, policy, supplier and customer.
pub fn escalation_filter(
    target: Option<&Token>,
    policy: Option<&Token>,
    supplier: Option<&Token>,
    customer: Option<&Token>,
) -> String {
    format!(
        "{}{}.{}.{}.{}.*",
        Signal::Escalated.prefix(),
        or_any(target),
        or_any(policy),
        or_any(supplier),
        or_any(customer)
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

    #[test]
    fn a_subject_says_its_topic_and_filters_match_the_subjects_they_name() {
        assert_eq!(topic("baton.handoff.h1.repair.eng.w5"), Some(Topic::Event));
        assert_eq!(topic("baton.disruption.lab.d1"), Some(Topic::Disruption));
        assert_eq!(topic("baton.deadletter.7"), Some(Topic::Deadletter));
        assert_eq!(
            topic("baton.sla.corrected.p.s.c.h1"),
            Some(Topic::Signal(Signal::Corrected))
        );
        assert_eq!(
            topic("baton.sla.warning.p.s.c.h1:2"),
            Some(Topic::Signal(Signal::Warning))
        );
        assert_eq!(
            topic("baton.sla.escalated.duty.p.s.c.h1"),
            Some(Topic::Escalation { target: "duty" })
        );
        assert_eq!(topic("baton.sla.unknown.p.s.c.h1"), None);
        assert_eq!(topic("other.subject"), None);

        let (p, s) = (t("blood-issue"), t("lab"));
        assert_eq!(
            signal_filter(None, Some(&p), None, None),
            "baton.sla.*.blood-issue.*.*.*"
        );
        assert_eq!(
            escalation_filter(Some(&t("duty")), Some(&p), None, None),
            "baton.sla.escalated.duty.blood-issue.*.*.*"
        );
        assert_eq!(events_filter(Some(&s), None), "baton.handoff.*.*.lab.*");
        assert_eq!(disruptions_filter(Some(&s)), "baton.disruption.lab.*");
    }
}
