//! How one clock counts toward the compliance figures.
//!
//! Every clock contributes exactly one [`Tally`] to one bucket (its promise,
//! supplier, customer and the hour its clock started). When a hand-off's
//! clocks change, the old contribution is taken out and the new one put in,
//! so a figure can never count a clock twice, and a late event that changes
//! an outcome corrects the figures instead of adding to them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    clock::{ClockOutcome, SlaState},
    histogram::Histogram,
    id::Token,
    time::Timestamp,
};

/// Aggregation granularity of compliance buckets.
pub const BUCKET_MILLIS: i64 = 3_600_000;

/// What one clock counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tally {
    /// Running or paused, within target.
    Open,
    Met,
    /// Stopped late or still running past the deadline.
    Breached,
    Cancelled,
    /// Ended within target by a reset: the next cycle took over.
    Reset,
}

/// One clock's contribution: which bucket, what it counts as, and (for a
/// stopped clock) its duration for the percentiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub policy_id: Token,
    pub supplier: Token,
    pub customer: Token,
    /// Start of the hour the clock started in.
    pub bucket: Timestamp,
    pub tally: Tally,
    pub duration: Option<Duration>,
    /// Ended by a rejection (counted as cancelled, and again as rejected).
    pub rejected: bool,
    /// Crossed its warning share of the target.
    pub warned: bool,
}

impl Contribution {
    /// `None` for a clock that has not started: it is in no window yet.
    /// The cycle's own supplier counts it; `supplier` is the fallback.
    pub fn of(clock: &ClockOutcome, supplier: &Token, customer: &Token) -> Option<Contribution> {
        let started = clock.started_at?;
        let (tally, duration) = match clock.state {
            SlaState::Pending => return None,
            SlaState::Running | SlaState::Paused => (Tally::Open, None),
            SlaState::Met => (Tally::Met, Some(clock.elapsed)),
            SlaState::Breached if clock.is_open() => (Tally::Breached, None),
            SlaState::Breached => (Tally::Breached, Some(clock.elapsed)),
            SlaState::Cancelled => (Tally::Cancelled, None),
            SlaState::Reset => (Tally::Reset, None),
        };
        Some(Contribution {
            policy_id: clock.policy_id.clone(),
            supplier: clock.supplier.as_ref().unwrap_or(supplier).clone(),
            customer: customer.clone(),
            bucket: bucket_start(started),
            tally,
            duration,
            rejected: clock.rejected(),
            warned: clock.warned,
        })
    }
}

pub fn bucket_start(at: Timestamp) -> Timestamp {
    Timestamp(at.0.div_euclid(BUCKET_MILLIS) * BUCKET_MILLIS)
}

/// Counts and durations for one bucket, or for any sum of buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tallies {
    pub open: u64,
    pub met: u64,
    pub breached: u64,
    pub cancelled: u64,
    /// Cycles ended within target by a reset (e.g. reassigned).
    pub reset: u64,
    /// Of the cancelled, those ended by a rejection: a quality signal.
    pub rejected: u64,
    /// Clocks that crossed their warning share (whatever became of them).
    pub warned: u64,
    /// Durations of the stopped (met or breached) clocks.
    pub durations: Histogram,
}

impl Tallies {
    pub fn add(&mut self, c: &Contribution) {
        *self.counter(c.tally) += 1;
        self.rejected += u64::from(c.rejected);
        self.warned += u64::from(c.warned);
        if let Some(d) = c.duration {
            self.durations.add(d);
        }
    }

    pub fn remove(&mut self, c: &Contribution) {
        let counter = self.counter(c.tally);
        *counter = counter.saturating_sub(1);
        self.rejected = self.rejected.saturating_sub(u64::from(c.rejected));
        self.warned = self.warned.saturating_sub(u64::from(c.warned));
        if let Some(d) = c.duration {
            self.durations.remove(d);
        }
    }

    pub fn merge(&mut self, other: &Tallies) {
        self.open += other.open;
        self.met += other.met;
        self.breached += other.breached;
        self.cancelled += other.cancelled;
        self.reset += other.reset;
        self.rejected += other.rejected;
        self.warned += other.warned;
        self.durations.merge(&other.durations);
    }

    pub fn is_empty(&self) -> bool {
        self.open == 0
            && self.met == 0
            && self.breached == 0
            && self.cancelled == 0
            && self.reset == 0
    }

    /// met + breached + open: every clock that counts.
    pub fn total(&self) -> u64 {
        self.met + self.breached + self.open
    }

    /// Share of decided clocks that met the promise; 1 when none is decided.
    pub fn compliance(&self) -> f64 {
        let decided = self.met + self.breached;
        if decided == 0 {
            1.0
        } else {
            self.met as f64 / decided as f64
        }
    }

    fn counter(&mut self, tally: Tally) -> &mut u64 {
        match tally {
            Tally::Open => &mut self.open,
            Tally::Met => &mut self.met,
            Tally::Breached => &mut self.breached,
            Tally::Cancelled => &mut self.cancelled,
            Tally::Reset => &mut self.reset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    fn clock(state: SlaState, stopped: Option<i64>, elapsed_ms: u64) -> ClockOutcome {
        ClockOutcome {
            policy_id: token("p"),
            cycle: 1,
            supplier: None,
            state,
            target: Duration::from_secs(60),
            started_at: Some(Timestamp(3_600_000 * 5 + 42)),
            stopped_at: stopped.map(Timestamp),
            ended_by: None,
            deadline: None,
            warn_at: None,
            warned: false,
            elapsed: Duration::from_millis(elapsed_ms),
        }
    }

    #[test]
    fn each_state_counts_once_in_its_hour() {
        let (s, c) = (token("lab"), token("ward"));
        let met = Contribution::of(&clock(SlaState::Met, Some(10), 10), &s, &c).expect("started");
        assert_eq!(met.bucket, Timestamp(3_600_000 * 5));
        assert_eq!(
            (met.tally, met.duration),
            (Tally::Met, Some(Duration::from_millis(10)))
        );
        let open_breach =
            Contribution::of(&clock(SlaState::Breached, None, 99), &s, &c).expect("started");
        assert_eq!(
            (open_breach.tally, open_breach.duration),
            (Tally::Breached, None)
        );

        let mut t = Tallies::default();
        t.add(&met);
        t.add(&open_breach);
        assert_eq!(
            (t.total(), t.met, t.breached, t.compliance()),
            (2, 1, 1, 0.5)
        );
        t.remove(&open_breach);
        assert_eq!((t.total(), t.compliance()), (1, 1.0));
        t.remove(&met);
        assert!(t.is_empty() && t.durations.is_empty());
    }

    #[test]
    fn a_pending_clock_counts_nowhere() {
        let mut pending = clock(SlaState::Pending, None, 0);
        pending.started_at = None;
        assert_eq!(Contribution::of(&pending, &token("a"), &token("b")), None);
    }
}
