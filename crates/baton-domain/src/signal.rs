//! Which signals a hand-off's clocks call for: the breaches that are new,
//! kept or withdrawn and the warnings that are new, compared with what was
//! signalled before.
//!
//! The views hold, per hand-off, the clock cycles recorded as breached and
//! as warned; after every event (or passing deadline) they re-evaluate the
//! clocks and ask [`diff`] what changed. Writing the records, outbox
//! entries and corrections is theirs; deciding is this module's, by the
//! clocks alone, so every replica and every replay decides the same.

use std::time::Duration;

use crate::{
    clock::{ClockOutcome, SlaState},
    id::Token,
    time::{duration_millis, Timestamp},
};

/// One cycle of one promise's clock on a hand-off.
pub type ClockId = (Token, u32);

/// The clock `c`'s id.
pub fn clock_id(c: &ClockOutcome) -> ClockId {
    (c.policy_id.clone(), c.cycle)
}

/// What was signalled for a hand-off before its clocks were re-evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Signalled<'a> {
    /// Cycles recorded as breached.
    pub breached: &'a [ClockId],
    /// Cycles whose warning was recorded (announced or not): warned once.
    pub warned: &'a [ClockId],
}

/// What the re-evaluated clocks call for, against [`Signalled`].
#[derive(Debug, Clone, PartialEq)]
pub struct SignalDiff<'c> {
    /// Every breached cycle with a deadline, in clock order.
    pub breaches: Vec<Breach<'c>>,
    /// Cycles recorded as breached that are breached no longer: by event
    /// time the promise held after all (a late event).
    pub withdrawn: Vec<Withdrawal<'c>>,
    /// Cycles warned for the first time.
    pub new_warnings: Vec<Warning<'c>>,
    /// Every cycle warned, before or now: what to record as warned.
    pub warned: Vec<ClockId>,
}

/// A breached cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach<'c> {
    pub clock: &'c ClockOutcome,
    /// When its target ran out.
    pub deadline: Timestamp,
    /// Not recorded as breached before: a breach to announce, if it pages.
    pub is_new: bool,
}

/// A breach withdrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawal<'c> {
    pub id: ClockId,
    /// The cycle as it stands now (`None`: the clock no longer exists,
    /// e.g. the promise stopped covering the hand-off).
    pub now: Option<&'c ClockOutcome>,
}

/// A cycle warned for the first time.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning<'c> {
    pub clock: &'c ClockOutcome,
    /// When the warning fell due.
    pub warn_at: Timestamp,
    /// The clock still runs toward its target: only then is the warning
    /// worth announcing (a breach says more than a warning).
    pub is_live: bool,
}

/// Compares `clocks`, a hand-off's clocks as re-evaluated, with what was
/// signalled `before`.
pub fn diff<'c>(before: Signalled<'_>, clocks: &'c [ClockOutcome]) -> SignalDiff<'c> {
    let breaches: Vec<Breach<'c>> = clocks
        .iter()
        .filter(|c| c.state == SlaState::Breached)
        .filter_map(|c| {
            Some(Breach {
                clock: c,
                deadline: c.deadline?,
                is_new: !before.breached.contains(&clock_id(c)),
            })
        })
        .collect();
    let withdrawn = before
        .breached
        .iter()
        .filter(|id| !breaches.iter().any(|b| clock_id(b.clock) == **id))
        .map(|id| Withdrawal {
            id: id.clone(),
            now: clocks
                .iter()
                .find(|c| c.policy_id == id.0 && c.cycle == id.1),
        })
        .collect();
    let mut warned = before.warned.to_vec();
    let mut new_warnings = Vec::new();
    for c in clocks.iter().filter(|c| c.warned) {
        let Some(warn_at) = c.warn_at else { continue };
        let id = clock_id(c);
        if warned.contains(&id) {
            continue;
        }
        warned.push(id);
        new_warnings.push(Warning {
            clock: c,
            warn_at,
            is_live: c.is_open() && c.state != SlaState::Breached,
        });
    }
    SignalDiff {
        breaches,
        withdrawn,
        new_warnings,
        warned,
    }
}

/// Whether something that fell due `at` is recent enough, at stream time
/// `now`, to announce: within `horizon` (`None`: always). History being
/// imported is not.
pub fn within_horizon(at: Timestamp, now: Timestamp, horizon: Option<Duration>) -> bool {
    let age = now.0.saturating_sub(at.0);
    horizon.is_none_or(|h| age <= duration_millis(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock(policy: &str, cycle: u32, state: SlaState, warned: bool) -> ClockOutcome {
        ClockOutcome {
            policy_id: Token::parse(policy).expect("token"),
            cycle,
            supplier: None,
            state,
            target: Duration::from_secs(600),
            started_at: Some(Timestamp(0)),
            stopped_at: None,
            ended_by: None,
            deadline: Some(Timestamp(600_000)),
            warn_at: Some(Timestamp(480_000)),
            warned,
            elapsed: Duration::from_secs(700),
        }
    }

    fn id(policy: &str, cycle: u32) -> ClockId {
        (Token::parse(policy).expect("token"), cycle)
    }

    #[test]
    fn a_breach_is_new_once_and_withdrawn_when_it_holds_after_all() {
        let clocks = [clock("repair", 1, SlaState::Breached, true)];
        let first = diff(
            Signalled {
                breached: &[],
                warned: &[],
            },
            &clocks,
        );
        assert_eq!(first.breaches.len(), 1);
        assert!(first.breaches[0].is_new);
        assert!(first.withdrawn.is_empty());

        let recorded = [id("repair", 1)];
        let again = diff(
            Signalled {
                breached: &recorded,
                warned: &first.warned,
            },
            &clocks,
        );
        assert!(!again.breaches[0].is_new, "announced once");
        assert!(again.new_warnings.is_empty(), "warned once");

        let met = [clock("repair", 1, SlaState::Met, true)];
        let late = diff(
            Signalled {
                breached: &recorded,
                warned: &first.warned,
            },
            &met,
        );
        assert!(late.breaches.is_empty());
        assert_eq!(late.withdrawn.len(), 1);
        assert_eq!(late.withdrawn[0].id, id("repair", 1));
        assert_eq!(late.withdrawn[0].now.map(|c| c.state), Some(SlaState::Met));
    }

    #[test]
    fn a_warning_on_a_breached_clock_is_recorded_but_not_live() {
        let clocks = [
            clock("repair", 1, SlaState::Breached, true),
            clock("respond", 1, SlaState::Running, true),
        ];
        let d = diff(
            Signalled {
                breached: &[],
                warned: &[],
            },
            &clocks,
        );
        let live: Vec<(&str, bool)> = d
            .new_warnings
            .iter()
            .map(|w| (w.clock.policy_id.as_str(), w.is_live))
            .collect();
        assert_eq!(live, [("repair", false), ("respond", true)]);
        assert_eq!(d.warned, [id("repair", 1), id("respond", 1)]);
    }

    #[test]
    fn the_horizon_bounds_what_is_announced() {
        let hour = Some(Duration::from_secs(3600));
        assert!(within_horizon(Timestamp(0), Timestamp(3_600_000), hour));
        assert!(!within_horizon(Timestamp(0), Timestamp(3_600_001), hour));
        assert!(within_horizon(Timestamp(0), Timestamp(i64::MAX), None));
        assert!(
            within_horizon(Timestamp(10), Timestamp(0), hour),
            "due ahead"
        );
    }

    fn any_state() -> impl Strategy<Value = SlaState> {
        prop_oneof![
            Just(SlaState::Running),
            Just(SlaState::Met),
            Just(SlaState::Breached),
            Just(SlaState::Cancelled),
        ]
    }

    proptest! {
        /// Whatever was recorded before: every breached clock is reported
        /// once, new exactly when it was not recorded; every recorded cycle
        /// not breached now is withdrawn; and applying the diff leaves
        /// nothing new.
        #[test]
        fn the_diff_accounts_for_every_cycle(
            states in proptest::collection::vec((any_state(), any::<bool>()), 0..6),
            recorded in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let clocks: Vec<ClockOutcome> = states
                .iter()
                .enumerate()
                .map(|(i, (s, w))| clock("repair", i as u32 + 1, *s, *w))
                .collect();
            let before: Vec<ClockId> = (0..6)
                .filter(|i| recorded[*i])
                .map(|i| id("repair", i as u32 + 1))
                .collect();
            let d = diff(Signalled { breached: &before, warned: &[] }, &clocks);
            let breached: Vec<ClockId> = clocks
                .iter()
                .filter(|c| c.state == SlaState::Breached)
                .map(clock_id)
                .collect();
            let reported: Vec<ClockId> = d.breaches.iter().map(|b| clock_id(b.clock)).collect();
            prop_assert_eq!(&reported, &breached);
            for b in &d.breaches {
                prop_assert_eq!(b.is_new, !before.contains(&clock_id(b.clock)));
            }
            for w in &d.withdrawn {
                prop_assert!(before.contains(&w.id) && !breached.contains(&w.id));
            }
            prop_assert_eq!(
                d.withdrawn.len(),
                before.iter().filter(|c| !breached.contains(c)).count()
            );

            let settled = diff(Signalled { breached: &breached, warned: &d.warned }, &clocks);
            prop_assert!(settled.breaches.iter().all(|b| !b.is_new));
            prop_assert!(settled.withdrawn.is_empty());
            prop_assert!(settled.new_warnings.is_empty());
        }
    }
}
