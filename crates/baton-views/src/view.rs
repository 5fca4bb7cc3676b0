//! What the views store: one value per hand-off, breach, disruption and
//! hourly figure, as the projection computes them and the queries read them.
//!
//! These are plain data with the arithmetic of their own figures; where
//! each lives in the tree is [`crate::keys`]'s business and how it is
//! written, [`crate::codec`]'s. They must never reach for the store.

use baton_domain::{
    compliance::Contribution,
    disruption::Disruption,
    event::{Priority, RecordedEvent},
    lifecycle::Handoff,
    Timestamp, Token,
};
use serde::{Deserialize, Serialize};

/// Everything the views hold about one hand-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffView {
    pub handoff: Handoff,
    /// Every event in stream order as its clocks read it
    /// ([`crate::compact::clock_record`]): the log holds them whole.
    pub events: Vec<RecordedEvent>,
    /// The stream sequence of its first event: no event of it comes
    /// earlier in the stream the views read, nor in the log of record,
    /// which holds every message of that stream at a sequence no lower.
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// What each of its clocks counts as in the compliance tallies.
    pub contributions: Vec<Contribution>,
    /// Its running clocks, with what the lists show of them. The timer's
    /// index is derived from their deadlines and `warnings`.
    pub deadlines: Vec<RunningClock>,
    /// Warnings of its running clocks not yet due: (policy, warning).
    pub warnings: Vec<(Token, Timestamp)>,
    /// Clock cycles that are breached (a `b/` record exists).
    pub breached: Vec<(Token, u32)>,
    /// Clock cycles whose warning was recorded (announced at most once).
    pub warned: Vec<(Token, u32)>,
    /// What the hand-off counts as in the pair tallies (volume, rating...).
    pub pair: Option<PairContribution>,
    /// Disruptions it was requested into, and whether a clock of it broke
    /// before that disruption was announced.
    pub disruptions: Vec<(Token, bool)>,
    /// Announced breaches a later event withdrew, oldest first.
    pub corrections: Vec<Correction>,
}

/// A running clock as the lists show it, kept when its hand-off's clocks
/// are evaluated so a list never evaluates them again for a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningClock {
    pub policy_id: Token,
    /// 1 for the first cycle; each reset event starts the next.
    pub cycle: u32,
    pub deadline: Timestamp,
    pub target: std::time::Duration,
    pub started_at: Option<Timestamp>,
    pub warn_at: Option<Timestamp>,
    /// Past its warning share when last evaluated (a warning's instant
    /// falls due on the timer, which evaluates it again).
    pub warned: bool,
}

impl RunningClock {
    /// The clock, if it is running (its deadline still ahead).
    pub fn of(clock: &baton_domain::clock::ClockOutcome) -> Option<RunningClock> {
        Some(RunningClock {
            policy_id: clock.policy_id.clone(),
            cycle: clock.cycle,
            deadline: clock.running_deadline()?,
            target: clock.target,
            started_at: clock.started_at,
            warn_at: clock.warn_at,
            warned: clock.warned,
        })
    }
}

/// A running clock and the hand-off it runs on, as a list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenClock {
    pub clock: RunningClock,
    pub handoff: Handoff,
}

/// An announced breach withdrawn by a later event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub policy_id: Token,
    pub cycle: u32,
    /// The deadline the withdrawn breach had.
    pub deadline: Timestamp,
    /// Stream time when it was withdrawn.
    pub corrected_at: Timestamp,
    pub cause: Cause,
}

/// The event whose arrival changed what the views had announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub event_id: String,
    pub event_type: baton_domain::EventType,
    /// The caller that sent it (empty without authentication).
    pub sent_by: String,
    /// `recorded_at - occurred_at` of that event.
    pub entry_lag: std::time::Duration,
    /// Sent from the measured supplier's side: its own late entry kept the
    /// promise it had been announced to break.
    pub by_supplier: bool,
}

impl Cause {
    pub fn of(record: &RecordedEvent) -> Cause {
        let event = &record.event;
        Cause {
            event_id: event.event_id.clone(),
            event_type: event.event_type,
            sent_by: record.envelope.sent_by.clone(),
            entry_lag: record.entry_lag(),
            by_supplier: baton_domain::access::side_of(event.event_type)
                == baton_domain::access::Side::Supplier,
        }
    }
}

impl HandoffView {
    /// The view of a hand-off just opened: no events, clocks or figures yet.
    pub fn new(handoff: Handoff) -> HandoffView {
        HandoffView {
            handoff,
            events: Vec::new(),
            first_sequence: 0,
            last_sequence: 0,
            contributions: Vec::new(),
            deadlines: Vec::new(),
            warnings: Vec::new(),
            breached: Vec::new(),
            warned: Vec::new(),
            pair: None,
            disruptions: Vec::new(),
            corrections: Vec::new(),
        }
    }

    /// The supplier it was first requested from (disruptions are by supplier).
    pub fn first_supplier(&self) -> &Token {
        self.events
            .first()
            .and_then(|e| e.event.supplier.as_ref())
            .unwrap_or(&self.handoff.supplier)
    }
}

/// One hand-off's share of its pair's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairContribution {
    pub supplier: Token,
    pub customer: Token,
    /// Start of the hour it was requested in.
    pub bucket: Timestamp,
    pub rejected: bool,
    pub disrupted: bool,
    pub rating: Option<u8>,
    /// Its corrections caused by the supplier's own late entries.
    pub late_entry_corrections: u32,
}

/// Volume, rejections, disruptions and ratings of a supplier x customer pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairTallies {
    pub handoffs: u64,
    pub rejected: u64,
    /// Requested into an active disruption of the supplier.
    pub disrupted: u64,
    pub ratings: u64,
    pub rating_sum: u64,
    /// Announced breaches withdrawn by the supplier's own late entries.
    pub late_entry_corrections: u64,
}

impl PairTallies {
    pub fn add(&mut self, c: &PairContribution) {
        self.handoffs += 1;
        self.rejected += u64::from(c.rejected);
        self.disrupted += u64::from(c.disrupted);
        if let Some(r) = c.rating {
            self.ratings += 1;
            self.rating_sum += u64::from(r);
        }
        self.late_entry_corrections += u64::from(c.late_entry_corrections);
    }

    pub fn remove(&mut self, c: &PairContribution) {
        self.handoffs = self.handoffs.saturating_sub(1);
        self.rejected = self.rejected.saturating_sub(u64::from(c.rejected));
        self.disrupted = self.disrupted.saturating_sub(u64::from(c.disrupted));
        if let Some(r) = c.rating {
            self.ratings = self.ratings.saturating_sub(1);
            self.rating_sum = self.rating_sum.saturating_sub(u64::from(r));
        }
        self.late_entry_corrections = self
            .late_entry_corrections
            .saturating_sub(u64::from(c.late_entry_corrections));
    }

    pub fn merge(&mut self, other: &PairTallies) {
        self.handoffs += other.handoffs;
        self.rejected += other.rejected;
        self.disrupted += other.disrupted;
        self.ratings += other.ratings;
        self.rating_sum += other.rating_sum;
        self.late_entry_corrections += other.late_entry_corrections;
    }

    /// Mean rating, if any was given.
    pub fn rating(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_sum as f64 / self.ratings as f64)
    }
}

/// A disruption and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisruptionView {
    pub disruption: Disruption,
    pub last_sequence: u64,
    /// Hand-offs requested into it.
    pub affected: u64,
    /// Of those, hand-offs with a promise that broke before the disruption
    /// was announced: it was announced too late to warn their customers.
    pub failed_before_announcement: u64,
}

/// A broken promise, as listed and announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachRecord {
    pub handoff_id: Token,
    pub policy_id: Token,
    pub kind: Token,
    pub supplier: Token,
    pub customer: Token,
    pub priority: Priority,
    /// When the target ran out; by event time also when it broke.
    pub deadline: Timestamp,
    /// When the stop event came; `None` while still waiting for it.
    pub stopped_at: Option<Timestamp>,
    /// Announced on NATS (false for a backfilled breach, older than the
    /// announce horizon when it was recorded: in the figures, paging nobody).
    pub announce: bool,
    /// Which cycle of the promise's clock (1 unless a reset restarted it).
    pub cycle: u32,
    pub target: std::time::Duration,
    /// Time on the clock at the stop event; `None` while still open.
    pub elapsed: Option<std::time::Duration>,
    /// When the clock crossed its warning share, if the promise warns.
    pub warn_at: Option<Timestamp>,
    /// Also announced to this escalation target.
    pub escalate_to: Option<Token>,
    /// On a correction: the event that withdrew the breach.
    pub cause: Option<Cause>,
    /// Who acknowledged its escalation, and when (only a promise with an
    /// escalation target is acknowledged).
    pub acknowledged: Option<Acknowledgement>,
}

/// The first acknowledgement of a breach's escalation: the actor of the
/// earliest ESCALATION_ACKNOWLEDGED event (by event time) at or after the
/// deadline, so the same events in any order name the same person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: Timestamp,
}

impl Acknowledgement {
    /// The acknowledgement of a breach at `deadline` among `events`.
    pub fn among(events: &[RecordedEvent], deadline: Timestamp) -> Option<Acknowledgement> {
        events
            .iter()
            .map(|r| &r.event)
            .filter(|e| {
                e.event_type == baton_domain::EventType::EscalationAcknowledged
                    && e.occurred_at >= deadline
            })
            .min_by(|a, b| (a.occurred_at, &a.actor).cmp(&(b.occurred_at, &b.actor)))
            .map(|e| Acknowledgement {
                by: e.actor.clone(),
                at: e.occurred_at,
            })
    }
}

impl BreachRecord {
    /// How far past the target: by the clock at the stop, or by `now`
    /// (wall time since the deadline) while still open.
    pub fn overrun(&self, now: Timestamp) -> std::time::Duration {
        match self.elapsed {
            Some(elapsed) => elapsed.saturating_sub(self.target),
            None => now.since(self.deadline),
        }
    }
}

/// What an outbox entry announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A promise broke.
    Breach,
    /// A promise announced broken held after all (a late event).
    Correction,
    /// A running clock crossed its warning share of the target.
    Warning,
    /// Someone acknowledged a breach's escalation.
    Acknowledged,
}
