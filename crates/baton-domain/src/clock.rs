//! A promise's clock over one hand-off's events.
//!
//! The clock is a pure function of the events (by `occurred_at`), the
//! promise, the hand-off's priority and `now`. Nothing is accumulated between
//! calls, so the same events give the same clock whether they arrive live, late
//! or in a replay, and `now` only matters while the clock is still running.
//!
//! Rules:
//! - The clock starts at the first `start` event and stops at the first `stop`
//!   event after it. Between a `pause` and the next `resume` it does not run.
//! - It is BREACHED once more than `target` has run; MET if it stopped within
//!   it (exactly on target is met).
//! - A hand-off closed by an event that is not a stop event (a cancellation,
//!   a rejection) ends the clock CANCELLED, unless the target had already run
//!   out: a promise broken before the cancellation stays broken.
//! - A clock whose start event has not happened is PENDING; if the hand-off
//!   closes first, CANCELLED.
//! - A `reset` event ends the current cycle (RESET, or BREACHED if its
//!   target had already run out) and starts the next at that instant. Each
//!   cycle belongs to the supplier holding the hand-off when it ended.
//! - With `warn_at`, the clock warns once more than that share of the target
//!   has run.
//! - Time runs only inside the promise's calendar: around the clock for
//!   `always`, within working hours otherwise; the deadline is the instant
//!   the target's worth of calendar time has run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    catalog::Policy,
    event::{EventType, Priority, RecordedEvent},
    id::Token,
    time::{duration_millis, Timestamp},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SlaState {
    /// The start event has not happened yet.
    Pending,
    Running,
    Paused,
    Met,
    Breached,
    Cancelled,
    /// Ended within target by one of the promise's reset events; a new cycle
    /// took over (e.g. the consult went to another specialist).
    Reset,
}

impl SlaState {
    pub fn name(self) -> &'static str {
        match self {
            SlaState::Pending => "pending",
            SlaState::Running => "running",
            SlaState::Paused => "paused",
            SlaState::Met => "met",
            SlaState::Breached => "breached",
            SlaState::Cancelled => "cancelled",
            SlaState::Reset => "reset",
        }
    }
}

/// One cycle of a promise's clock on one hand-off, as of `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOutcome {
    pub policy_id: Token,
    /// 1 for the first cycle; each reset event starts the next.
    pub cycle: u32,
    /// Who owned this cycle: the supplier holding the hand-off when it ended
    /// (or now, while it runs). `None` only if no event named a supplier.
    pub supplier: Option<Token>,
    pub state: SlaState,
    pub target: Duration,
    pub started_at: Option<Timestamp>,
    /// When the clock stopped (stop event) or ended (cancelled, rejected, reset).
    pub stopped_at: Option<Timestamp>,
    /// The event that ended this cycle.
    pub ended_by: Option<EventType>,
    /// When the target runs out while the clock runs; for a breached clock,
    /// when it ran out. `None` while pending or paused within target.
    pub deadline: Option<Timestamp>,
    /// When the clock crosses (or crossed) the promise's warning share of
    /// the target, as `deadline` is for the target. `None` without `warn_at`.
    pub warn_at: Option<Timestamp>,
    /// More than the warning share has run (at the stop, or by now).
    pub warned: bool,
    /// Time on the clock at `stopped_at`, or at `now` while it runs.
    pub elapsed: Duration,
}

impl ClockOutcome {
    /// Still waiting for the event that ends it (even if already breached).
    pub fn is_open(&self) -> bool {
        self.stopped_at.is_none() && self.state != SlaState::Cancelled
    }

    /// Running, not yet breached, with a deadline: a timer must watch it.
    pub fn running_deadline(&self) -> Option<Timestamp> {
        match self.state {
            SlaState::Running => self.deadline,
            _ => None,
        }
    }

    /// Running, not yet warned: when the warning falls due.
    pub fn running_warning(&self) -> Option<Timestamp> {
        match self.state {
            SlaState::Running if !self.warned => self.warn_at,
            _ => None,
        }
    }

    /// Ended by a rejection (a sample or request refused by the supplier).
    pub fn rejected(&self) -> bool {
        self.ended_by == Some(EventType::Rejected)
    }
}

/// How a cycle ended, if it did.
#[derive(Clone, Copy)]
enum End {
    /// Still running (or paused) at `now`.
    Open,
    Stopped(Timestamp),
    Closed(Timestamp),
    Reset(Timestamp),
}

/// One cycle as the walk over events builds it: when it ran. Thresholds
/// (the target, the warning share) are read off its spans when it ends, so
/// a target changed mid-cycle applies as if it had held from the start.
struct Cycle<'p> {
    policy: &'p Policy,
    number: u32,
    started_at: Timestamp,
    /// Closed running spans, oldest first.
    spans: Vec<(Timestamp, Timestamp)>,
    /// Start of the current running span; `None` while paused.
    running_since: Option<Timestamp>,
}

impl<'p> Cycle<'p> {
    fn start(policy: &'p Policy, number: u32, at: Timestamp) -> Cycle<'p> {
        Cycle {
            policy,
            number,
            started_at: at,
            spans: Vec::new(),
            running_since: Some(at),
        }
    }

    fn working(&self, from: Timestamp, to: Timestamp) -> i64 {
        duration_millis(self.policy.calendar.working_between(from, to))
    }

    /// Working time on the clock at `at` (not before the last event walked).
    fn worked_until(&self, at: Timestamp) -> i64 {
        let closed: i64 = self.spans.iter().map(|&(a, b)| self.working(a, b)).sum();
        closed
            + self
                .running_since
                .map_or(0, |since| self.working(since, at))
    }

    /// Where `threshold` of working time is reached: within a closed span
    /// (reached, not only passed: a clock paused exactly on its target ran
    /// out where it paused), or ahead in the running span.
    fn crossing(&self, threshold: i64) -> Option<Timestamp> {
        let mut spent = 0;
        for &(from, to) in &self.spans {
            let span = self.working(from, to);
            if spent + span >= threshold {
                return self.reach(from, threshold - spent);
            }
            spent += span;
        }
        self.running_since
            .and_then(|since| self.reach(since, threshold - spent))
    }

    fn reach(&self, from: Timestamp, left: i64) -> Option<Timestamp> {
        let left = Duration::from_millis(left.max(0) as u64);
        self.policy.calendar.add_working(from, left)
    }

    fn pause(&mut self, until: Timestamp) {
        if let Some(since) = self.running_since.take() {
            self.spans.push((since, until));
        }
    }

    fn finish(
        mut self,
        end: End,
        ended_by: Option<EventType>,
        supplier: Option<Token>,
        target_ms: i64,
        now: Timestamp,
    ) -> ClockOutcome {
        let warn_ms = self
            .policy
            .warning_after(Duration::from_millis(target_ms.max(0) as u64))
            .map(duration_millis);
        let mut outcome = ClockOutcome {
            policy_id: self.policy.id.clone(),
            cycle: self.number,
            supplier,
            state: SlaState::Running,
            target: Duration::from_millis(target_ms.max(0) as u64),
            started_at: Some(self.started_at),
            stopped_at: None,
            ended_by,
            deadline: None,
            warn_at: None,
            warned: false,
            elapsed: Duration::ZERO,
        };
        let at = match end {
            End::Stopped(at) | End::Closed(at) | End::Reset(at) => {
                self.pause(at);
                outcome.stopped_at = Some(at);
                at
            }
            End::Open => now,
        };
        let elapsed = self.worked_until(at).max(0);
        let breached = elapsed > target_ms;
        outcome.elapsed = Duration::from_millis(elapsed as u64);
        outcome.warned = warn_ms.is_some_and(|w| elapsed > w);
        let running = matches!(end, End::Open) && self.running_since.is_some();
        // A running clock shows where its thresholds fall, ahead or behind;
        // a stopped or paused one only those it reached.
        outcome.deadline = (running || breached)
            .then(|| self.crossing(target_ms))
            .flatten();
        outcome.warn_at = (running || outcome.warned)
            .then(|| warn_ms.and_then(|w| self.crossing(w)))
            .flatten();
        outcome.state = match (breached, end) {
            (true, _) => SlaState::Breached,
            (false, End::Stopped(_)) => SlaState::Met,
            (false, End::Reset(_)) => SlaState::Reset,
            (false, End::Closed(_)) => SlaState::Cancelled,
            (false, End::Open) if running => SlaState::Running,
            (false, End::Open) => SlaState::Paused,
        };
        outcome
    }
}

/// The target a priority change leaves a cycle with. A cycle whose
/// deadline has passed at the change keeps its target unless the new one
/// is as tight or tighter: a priority change never un-breaks a promise.
/// Otherwise the new target applies as if it had held from the start
/// (raised: judged against the tighter target from the request; lowered:
/// given the longer one). A priority without a target leaves it as it was.
fn retarget(current: Option<i64>, new: Option<i64>, elapsed_at_change: Option<i64>) -> Option<i64> {
    match (current, new, elapsed_at_change) {
        (_, None, _) => current,
        (None, Some(new), _) => Some(new),
        (Some(current), Some(new), Some(elapsed)) if elapsed > current && new > current => {
            Some(current)
        }
        (Some(_), Some(new), _) => Some(new),
    }
}

/// Evaluates `policy`'s clock over a hand-off's recorded events (any order)
/// for a hand-off requested at `priority`: one outcome per cycle, oldest
/// first. Empty if the promise has no target for any priority it held.
///
/// Each event counts at its [`RecordedEvent::clock_time`] under the promise's
/// `max_entry_lag`; ties are broken by version. REPRIORITIZED events change
/// the target as [`retarget`] says.
pub fn evaluate(
    policy: &Policy,
    priority: Priority,
    events: &[RecordedEvent],
    now: Timestamp,
) -> Vec<ClockOutcome> {
    let target_of = |p: Priority| policy.target(p).map(duration_millis);
    let mut target = target_of(priority);
    let lag = policy.max_entry_lag;
    let mut ordered: Vec<(Timestamp, &RecordedEvent)> =
        events.iter().map(|e| (e.clock_time(lag), e)).collect();
    ordered.sort_by_key(|(at, e)| (*at, e.envelope.version));

    let mut cycles = Vec::new();
    let mut current: Option<Cycle> = None;
    let mut supplier: Option<Token> = None;
    // A cycle ended while no priority had a target is no clock at all.
    let push = |cycles: &mut Vec<ClockOutcome>, cycle: Cycle, end, by, who, target| {
        if let Some(target) = target {
            cycles.push(cycle.finish(end, by, who, target, now));
        }
    };

    for (at, RecordedEvent { event, .. }) in ordered {
        let t = event.event_type;
        if t == EventType::Reprioritized {
            if let Some(p) = event.priority {
                let elapsed = current.as_ref().map(|c| c.worked_until(at));
                target = retarget(target, target_of(p), elapsed);
            }
        }
        let Some(mut cycle) = current.take() else {
            supplier = event.supplier.clone().or(supplier);
            if t == policy.start {
                current = Some(Cycle::start(policy, 1, at));
            } else if t.is_terminal() {
                // Closed before the clock ever started.
                return pending(policy, target, supplier, SlaState::Cancelled, Some(t));
            }
            continue;
        };
        if policy.stop.contains(&t) || t.is_terminal() {
            let end = if policy.stop.contains(&t) {
                End::Stopped(at)
            } else {
                End::Closed(at)
            };
            supplier = event.supplier.clone().or(supplier);
            push(&mut cycles, cycle, end, Some(t), supplier, target);
            return cycles;
        }
        if policy.reset.contains(&t) {
            // The cycle belongs to whoever held the hand-off until now.
            let number = cycle.number + 1;
            push(
                &mut cycles,
                cycle,
                End::Reset(at),
                Some(t),
                supplier.clone(),
                target,
            );
            supplier = event.supplier.clone().or(supplier);
            current = Some(Cycle::start(policy, number, at));
            continue;
        }
        supplier = event.supplier.clone().or(supplier);
        if policy.pause.contains(&t) {
            cycle.pause(at);
        } else if policy.resume.contains(&t) && cycle.running_since.is_none() {
            cycle.running_since = Some(at);
        }
        current = Some(cycle);
    }
    match current {
        Some(cycle) => push(&mut cycles, cycle, End::Open, None, supplier, target),
        None => return pending(policy, target, supplier, SlaState::Pending, None),
    }
    cycles
}

/// A clock that never started, if the promise has a target for it.
fn pending(
    policy: &Policy,
    target: Option<i64>,
    supplier: Option<Token>,
    state: SlaState,
    ended_by: Option<EventType>,
) -> Vec<ClockOutcome> {
    let Some(target) = target else {
        return Vec::new();
    };
    vec![ClockOutcome {
        policy_id: policy.id.clone(),
        cycle: 1,
        supplier,
        state,
        target: Duration::from_millis(target.max(0) as u64),
        started_at: None,
        stopped_at: None,
        ended_by,
        deadline: None,
        warn_at: None,
        warned: false,
        elapsed: Duration::ZERO,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        catalog::Catalog,
        event::{
            tests::{self, later, requested},
            Event, EventType,
        },
    };
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "Engineering"}, {"id": "ward-5", "name": "Ward 5"}],
                "kinds": ["repair"],
                "promises": [
                  {"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                   "targets": {"routine": "30m", "stat": "5m"}},
                  {"id": "fix", "kind": "repair", "start": "requested", "stop": ["completed"],
                   "pause": ["on_hold"], "resume": ["resumed"], "targets": {"routine": "4h"}}
                ]}"#,
        )
        .expect("catalog")
    }

    /// `event` recorded at `version` as it happened.
    fn at_version(event: Event, version: u64) -> RecordedEvent {
        let at = event.occurred_at.0;
        tests::recorded(event, version, at)
    }

    fn history(steps: &[(EventType, i64)]) -> Vec<RecordedEvent> {
        let mut events = vec![at_version(requested("h1", 0), 1)];
        for (i, (t, at)) in steps.iter().enumerate() {
            events.push(at_version(later("h1", *t, *at), i as u64 + 2));
        }
        events
    }

    fn last(mut cycles: Vec<ClockOutcome>) -> ClockOutcome {
        cycles.pop().expect("a cycle")
    }

    fn clock(policy: &str, steps: &[(EventType, i64)], now: i64) -> ClockOutcome {
        let catalog = catalog();
        let policy = catalog.policy(policy).expect("policy");
        last(evaluate(
            policy,
            Priority::Routine,
            &history(steps),
            Timestamp(now),
        ))
    }

    #[test]
    fn acknowledged_in_time_is_met() {
        let c = clock("response", &[(EventType::Acknowledged, 29 * MIN)], 40 * MIN);
        assert_eq!(c.state, SlaState::Met);
        assert_eq!(c.elapsed, Duration::from_secs(29 * 60));
        assert_eq!(c.stopped_at, Some(Timestamp(29 * MIN)));
        assert_eq!(c.deadline, None);
    }

    #[test]
    fn exactly_on_target_is_met_one_millisecond_late_is_breached() {
        assert_eq!(
            clock("response", &[(EventType::Acknowledged, 30 * MIN)], 0).state,
            SlaState::Met
        );
        let late = clock("response", &[(EventType::Acknowledged, 30 * MIN + 1)], 0);
        assert_eq!(late.state, SlaState::Breached);
        assert_eq!(late.deadline, Some(Timestamp(30 * MIN)));
    }

    #[test]
    fn a_running_clock_breaches_by_now_alone() {
        let running = clock("response", &[], 30 * MIN);
        assert_eq!(running.state, SlaState::Running);
        assert_eq!(running.running_deadline(), Some(Timestamp(30 * MIN)));
        let breached = clock("response", &[], 30 * MIN + 1);
        assert_eq!(breached.state, SlaState::Breached);
        assert!(breached.is_open());
        assert_eq!(breached.deadline, Some(Timestamp(30 * MIN)));
        assert_eq!(breached.running_deadline(), None);
    }

    #[test]
    fn pauses_move_the_deadline() {
        use EventType::*;
        let c = clock(
            "fix",
            &[
                (Acknowledged, MIN),
                (OnHold, 60 * MIN),
                (Resumed, 180 * MIN),
            ],
            200 * MIN,
        );
        assert_eq!(c.state, SlaState::Running);
        assert_eq!(c.elapsed, Duration::from_secs(80 * 60));
        assert_eq!(c.deadline, Some(Timestamp(360 * MIN)));
        let paused = clock("fix", &[(OnHold, 60 * MIN)], 1_000 * MIN);
        assert_eq!(paused.state, SlaState::Paused);
        assert_eq!(paused.elapsed, Duration::from_secs(60 * 60));
        assert_eq!(paused.deadline, None);
        let done = clock(
            "fix",
            &[
                (OnHold, 60 * MIN),
                (Resumed, 600 * MIN),
                (Completed, 700 * MIN),
            ],
            0,
        );
        assert_eq!(done.state, SlaState::Met);
        assert_eq!(done.elapsed, Duration::from_secs(160 * 60));
    }

    #[test]
    fn a_clock_paused_exactly_on_target_ran_out_where_it_paused() {
        use EventType::*;
        // 4h target; on hold exactly at 4h, resumed an hour later. The
        // target's worth had run at 4h, as it would for a clock whose
        // calendar closed at 4h: the deadline is 4h, not the resumption.
        let hold = [(OnHold, 240 * MIN), (Resumed, 300 * MIN)];
        let running = clock("fix", &hold, 300 * MIN);
        assert_eq!(
            (running.state, running.elapsed, running.deadline),
            (
                SlaState::Running,
                Duration::from_secs(4 * 3600),
                Some(Timestamp(240 * MIN))
            )
        );
        let late = clock("fix", &[hold[0], hold[1], (Completed, 310 * MIN)], 0);
        assert_eq!(
            (late.state, late.deadline),
            (SlaState::Breached, Some(Timestamp(240 * MIN)))
        );
        // Stopped while on hold exactly on target: met, no deadline.
        let met = clock("fix", &[hold[0], (Completed, 250 * MIN)], 0);
        assert_eq!((met.state, met.deadline), (SlaState::Met, None));
        let held = clock("fix", &[hold[0]], 1_000 * MIN);
        assert_eq!((held.state, held.deadline), (SlaState::Paused, None));
    }

    #[test]
    fn cancellation_ends_the_clock_unless_already_broken() {
        use EventType::*;
        assert_eq!(
            clock("response", &[(Cancelled, 10 * MIN)], 0).state,
            SlaState::Cancelled
        );
        assert_eq!(
            clock("response", &[(Rejected, 10 * MIN)], 0).state,
            SlaState::Cancelled
        );
        let late = clock("response", &[(Cancelled, 40 * MIN)], 0);
        assert_eq!(late.state, SlaState::Breached);
        assert!(!late.is_open());
    }

    #[test]
    fn a_clock_whose_start_never_came_is_pending_then_cancelled() {
        let catalog = Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W"}],
                "kinds": ["repair"],
                "promises": [{"id": "work", "kind": "repair", "start": "started", "stop": ["completed"], "targets": {"routine": "1h"}}]}"#,
        )
        .expect("catalog");
        let policy = catalog.policy("work").expect("policy");
        let open = history(&[(EventType::Acknowledged, MIN)]);
        assert_eq!(
            last(evaluate(policy, Priority::Routine, &open, Timestamp(0))).state,
            SlaState::Pending
        );
        let closed = history(&[(EventType::Cancelled, MIN)]);
        assert_eq!(
            last(evaluate(policy, Priority::Routine, &closed, Timestamp(0))).state,
            SlaState::Cancelled
        );
    }

    #[test]
    fn a_working_hours_clock_does_not_run_at_night() {
        let catalog = Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W"}],
                "kinds": ["repair"],
                "calendars": [{"id": "days", "time_zone": "UTC", "week": {"mon": ["08:00-17:00"], "tue": ["08:00-17:00"]}}],
                "promises": [{"id": "work", "kind": "repair", "start": "requested", "stop": ["completed"],
                              "targets": {"routine": "2h"}, "calendar": "days"}]}"#,
        )
        .expect("catalog");
        let policy = catalog.policy("work").expect("policy");
        // Monday 1970-01-05 16:00 UTC, requested one hour before closing.
        let monday_16h = (4 * 24 + 16) * 60 * MIN;
        let mut events = vec![at_version(requested("h1", monday_16h), 1)];
        let tuesday_8h = (5 * 24 + 8) * 60 * MIN;
        let overnight = last(evaluate(
            policy,
            Priority::Routine,
            &events,
            Timestamp(tuesday_8h),
        ));
        assert_eq!(overnight.state, SlaState::Running);
        assert_eq!(
            overnight.elapsed,
            Duration::from_secs(3600),
            "the night did not count"
        );
        assert_eq!(overnight.deadline, Some(Timestamp(tuesday_8h + 60 * MIN)));
        let done = later("h1", EventType::Completed, tuesday_8h + 90 * MIN);
        events.push(at_version(done, 2));
        let late = last(evaluate(policy, Priority::Routine, &events, Timestamp(0)));
        assert_eq!(
            (late.state, late.elapsed),
            (SlaState::Breached, Duration::from_secs(150 * 60))
        );
        assert_eq!(late.deadline, Some(Timestamp(tuesday_8h + 60 * MIN)));
    }

    #[test]
    fn a_reset_starts_a_new_cycle_for_the_new_supplier() {
        use EventType::*;
        let catalog = Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W"}],
                "kinds": ["repair"],
                "promises": [{"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                              "reset": ["reassigned"], "targets": {"routine": "30m"}}]}"#,
        )
        .expect("catalog");
        let policy = catalog.policy("response").expect("policy");
        let mut events = history(&[
            (Reassigned, 40 * MIN),
            (Reassigned, 50 * MIN),
            (Acknowledged, 60 * MIN),
        ]);
        events[1].event.supplier = Some(Token::parse("cardiology").expect("token"));
        events[2].event.supplier = Some(Token::parse("dentistry").expect("token"));
        let cycles = evaluate(policy, Priority::Routine, &events, Timestamp(0));
        let summary: Vec<_> = cycles
            .iter()
            .map(|c| {
                (
                    c.cycle,
                    c.supplier.as_ref().map(|s| s.to_string()),
                    c.state,
                    c.elapsed.as_secs() / 60,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, Some("engineering".into()), SlaState::Breached, 40),
                (2, Some("cardiology".into()), SlaState::Reset, 10),
                (3, Some("dentistry".into()), SlaState::Met, 10),
            ]
        );
        assert_eq!(cycles[0].deadline, Some(Timestamp(30 * MIN)));
        assert_eq!(cycles[1].ended_by, Some(Reassigned));
        // Without the reset event listed, one clock runs on.
        let plain = evaluate(
            catalog_with("\"targets\": {\"routine\": \"30m\"}"),
            Priority::Routine,
            &events,
            Timestamp(0),
        );
        assert_eq!(plain.len(), 1);
        assert_eq!(
            plain[0].supplier.as_ref().map(|s| s.as_str()),
            Some("dentistry")
        );
    }

    fn catalog_with(extra: &str) -> &'static Policy {
        let json = format!(
            r#"{{"departments": [{{"id": "engineering", "name": "E"}}, {{"id": "ward-5", "name": "W"}}],
                "kinds": ["repair"],
                "promises": [{{"id": "p", "kind": "repair", "start": "requested", "stop": ["completed"],
                              "pause": ["on_hold"], "resume": ["resumed"], {extra}}}]}}"#
        );
        let catalog = Box::leak(Box::new(Catalog::from_json(&json).expect("catalog")));
        catalog.policy("p").expect("policy")
    }

    #[test]
    fn a_warning_falls_due_at_its_share_of_the_target() {
        use EventType::*;
        let policy = catalog_with(r#""targets": {"routine": "100m"}, "warn_at": 0.8"#);
        let at = |steps: &[(EventType, i64)], now: i64| {
            last(evaluate(
                policy,
                Priority::Routine,
                &history(steps),
                Timestamp(now),
            ))
        };
        let early = at(&[], 50 * MIN);
        assert_eq!(
            (early.warned, early.running_warning()),
            (false, Some(Timestamp(80 * MIN)))
        );
        let paused = at(&[(OnHold, 10 * MIN), (Resumed, 30 * MIN)], 50 * MIN);
        assert_eq!(
            paused.running_warning(),
            Some(Timestamp(100 * MIN)),
            "the hold moved it"
        );
        let exactly = at(&[], 80 * MIN);
        assert!(!exactly.warned, "warns once more than the share has run");
        let warned = at(&[], 80 * MIN + 1);
        assert_eq!(
            (warned.warned, warned.running_warning(), warned.state),
            (true, None, SlaState::Running)
        );
        let met_late = at(&[(Completed, 90 * MIN)], 0);
        assert_eq!(
            (met_late.state, met_late.warned, met_late.warn_at),
            (SlaState::Met, true, Some(Timestamp(80 * MIN)))
        );
        let met_early = at(&[(Completed, 70 * MIN)], 0);
        assert_eq!((met_early.warned, met_early.warn_at), (false, None));
    }

    #[test]
    fn a_rejection_is_told_apart_from_a_cancellation() {
        use EventType::*;
        let rejected = clock("response", &[(Rejected, MIN)], 0);
        let cancelled = clock("response", &[(Cancelled, MIN)], 0);
        assert_eq!(
            (rejected.state, rejected.rejected()),
            (SlaState::Cancelled, true)
        );
        assert_eq!(
            (cancelled.state, cancelled.rejected()),
            (SlaState::Cancelled, false)
        );
    }

    #[test]
    fn priority_without_a_target_has_no_clock() {
        let catalog = catalog();
        let fix = catalog.policy("fix").expect("policy");
        assert_eq!(
            evaluate(fix, Priority::Stat, &history(&[]), Timestamp(0)),
            Vec::new()
        );
    }

    /// The obvious way: step through time one millisecond at a time... in
    /// minutes, since every test instant is a whole minute.
    fn reference(steps: &[(EventType, i64)], target_min: i64) -> (SlaState, i64) {
        let mut sorted = steps.to_vec();
        sorted.sort_by_key(|(_, at)| *at);
        let mut running = true;
        let mut elapsed = 0;
        let mut minute = 0;
        let mut idx = 0;
        loop {
            while idx < sorted.len() && sorted[idx].1 == minute * MIN {
                match sorted[idx].0 {
                    EventType::Completed => {
                        return (
                            if elapsed > target_min {
                                SlaState::Breached
                            } else {
                                SlaState::Met
                            },
                            elapsed,
                        );
                    }
                    EventType::Cancelled | EventType::Rejected => {
                        return (
                            if elapsed > target_min {
                                SlaState::Breached
                            } else {
                                SlaState::Cancelled
                            },
                            elapsed,
                        );
                    }
                    EventType::OnHold => running = false,
                    EventType::Resumed => running = true,
                    _ => {}
                }
                idx += 1;
            }
            if idx >= sorted.len() {
                return (SlaState::Running, elapsed);
            }
            if running {
                elapsed += 1;
            }
            minute += 1;
        }
    }

    /// A history whose events were recorded at given instants:
    /// (type, occurred_at, recorded_at, new priority for REPRIORITIZED).
    fn recorded(
        priority: Priority,
        steps: &[(EventType, i64, i64, Option<Priority>)],
    ) -> Vec<RecordedEvent> {
        let mut first = requested("h1", 0);
        first.priority = Some(priority);
        let mut events = vec![tests::recorded(first, 1, 0)];
        for (i, &(t, at, recorded_at, p)) in steps.iter().enumerate() {
            let mut e = later("h1", t, at);
            e.priority = p;
            events.push(tests::recorded(e, i as u64 + 2, recorded_at));
        }
        events
    }

    fn response(
        priority: Priority,
        steps: &[(EventType, i64, i64, Option<Priority>)],
        now: i64,
    ) -> ClockOutcome {
        let catalog = catalog();
        let policy = catalog.policy("response").expect("policy");
        last(evaluate(
            policy,
            priority,
            &recorded(priority, steps),
            Timestamp(now),
        ))
    }

    #[test]
    fn a_priority_change_never_un_breaks_a_clock() {
        use EventType::*;
        use Priority::*;
        let lower = |at| (Reprioritized, at, at, Some(Routine));
        let raise = |at| (Reprioritized, at, at, Some(Stat));
        // STAT (5 min) lowered to routine after its deadline: still broken.
        let c = response(Stat, &[lower(10 * MIN)], 11 * MIN);
        assert_eq!(
            (c.state, c.deadline, c.target),
            (
                SlaState::Breached,
                Some(Timestamp(5 * MIN)),
                Duration::from_secs(300)
            )
        );
        // ...and an acknowledgement after that does not make it met.
        let c = response(
            Stat,
            &[lower(10 * MIN), (Acknowledged, 12 * MIN, 12 * MIN, None)],
            0,
        );
        assert_eq!(c.state, SlaState::Breached);
        // Lowered while its deadline is ahead: the routine target, from the request.
        let c = response(Stat, &[lower(3 * MIN)], 4 * MIN);
        assert_eq!(
            (c.state, c.deadline),
            (SlaState::Running, Some(Timestamp(30 * MIN)))
        );
        // Exactly on the deadline is not past it.
        let c = response(Stat, &[lower(5 * MIN)], 6 * MIN);
        assert_eq!(c.state, SlaState::Running);
        // Raised: judged against the STAT target from the request.
        let c = response(Routine, &[raise(10 * MIN)], 10 * MIN);
        assert_eq!(
            (c.state, c.deadline),
            (SlaState::Breached, Some(Timestamp(5 * MIN)))
        );
        let c = response(
            Routine,
            &[raise(2 * MIN), (Acknowledged, 4 * MIN, 4 * MIN, None)],
            0,
        );
        assert_eq!(
            (c.state, c.target),
            (SlaState::Met, Duration::from_secs(300))
        );
        // Lowered in time, raised again later: the STAT target holds again.
        let c = response(Stat, &[lower(3 * MIN), raise(20 * MIN)], 20 * MIN);
        assert_eq!(
            (c.state, c.deadline),
            (SlaState::Breached, Some(Timestamp(5 * MIN)))
        );
    }

    #[test]
    fn a_late_entry_counts_no_further_back_than_the_bound() {
        use EventType::*;
        use Priority::*;
        // The default bound is five minutes. Acknowledged at 4 min, entered
        // at 40: read at 35, past the 30-minute target.
        let late = response(Routine, &[(Acknowledged, 4 * MIN, 40 * MIN, None)], 0);
        assert_eq!(
            (late.state, late.stopped_at),
            (SlaState::Breached, Some(Timestamp(35 * MIN)))
        );
        // Acknowledged at 29, entered at 33: within the bound, kept.
        let kept = response(Routine, &[(Acknowledged, 29 * MIN, 33 * MIN, None)], 0);
        assert_eq!(
            (kept.state, kept.stopped_at),
            (SlaState::Met, Some(Timestamp(29 * MIN)))
        );
        // A request entered an hour after its date starts the clock five
        // minutes before its entry.
        let mut events = recorded(Stat, &[]);
        events[0].envelope.recorded_at = Timestamp(60 * MIN);
        let catalog = catalog();
        let policy = catalog.policy("response").expect("policy");
        let c = last(evaluate(policy, Stat, &events, Timestamp(60 * MIN)));
        assert_eq!(
            (c.state, c.started_at, c.deadline),
            (
                SlaState::Running,
                Some(Timestamp(55 * MIN)),
                Some(Timestamp(60 * MIN))
            )
        );
        // History loaded by an importer reads as dated.
        events[0].envelope.backfill = true;
        let c = last(evaluate(policy, Stat, &events, Timestamp(60 * MIN)));
        assert_eq!(
            (c.state, c.started_at),
            (SlaState::Breached, Some(Timestamp(0)))
        );
    }

    /// What the measured supplier may send, with the supplier's own
    /// priority changes only ever raising it.
    fn supplier_step() -> impl Strategy<Value = (EventType, i64, i64, bool)> {
        let types = proptest::sample::select(vec![
            EventType::Acknowledged,
            EventType::Started,
            EventType::OnHold,
            EventType::Resumed,
            EventType::Completed,
            EventType::Rejected,
            EventType::Reassigned,
            EventType::Reprioritized,
        ]);
        // occurred_at anywhere from the request on; entered some time after
        // the deadline; whether this one is entered within the bound.
        (types, 0..600i64, 1..600i64, any::<bool>())
    }

    proptest! {

        /// No sequence of events the measured supplier sends after a
        /// promise broke turns it back into a kept one, unless one of them
        /// was entered within the late-entry bound and dated before the
        /// deadline (what the views then flag as a late-entry correction).
        #[test]
        fn the_supplier_cannot_un_break_a_promise_beyond_the_late_entry_bound(
            policy_id in proptest::sample::select(vec!["response", "fix"]),
            stat in any::<bool>(),
            steps in proptest::collection::vec(supplier_step(), 1..8),
        ) {
            use EventType::*;
            let catalog = catalog();
            let policy = catalog.policy(policy_id).expect("policy");
            let priority = if stat && policy.target(Priority::Stat).is_some() {
                Priority::Stat
            } else {
                Priority::Routine
            };
            let target = duration_millis(policy.target(priority).expect("a target"));
            let lag = duration_millis(policy.max_entry_lag);
            let deadline = target;
            let mut entered = deadline + 1;
            let mut within = false;
            let mut events = recorded(priority, &[]);
            for (i, (t, dated_min, gap_s, in_bound)) in steps.into_iter().enumerate() {
                entered += gap_s * 1_000;
                let occurred = if in_bound {
                    // Entered within the bound: may be dated up to `lag` back.
                    entered - (dated_min * 1_000).min(lag)
                } else {
                    // Dated anywhere, but entered later than the bound allows.
                    (dated_min * MIN).min(entered - lag - 1)
                };
                let occurred = occurred.max(0);
                let mut e = later("h1", t, occurred);
                if t == Reassigned {
                    e.supplier = Some(Token::parse(&format!("s{i}")).expect("token"));
                }
                if t == Reprioritized {
                    e.priority = Some(Priority::Stat);
                }
                // Read as dated only if entered within the bound.
                let read_at = occurred.max(entered - lag);
                if read_at <= deadline {
                    within = true;
                }
                events.push(tests::recorded(e, i as u64 + 2, entered));
            }
            let first = evaluate(policy, priority, &events, Timestamp(entered))
                .into_iter()
                .next()
                .expect("a cycle");
            if !within {
                prop_assert_eq!(first.state, SlaState::Breached);
            }
        }
        /// Against a minute-by-minute reference, for random pause/resume
        /// histories that end in a stop or a cancellation, given in any order.
        #[test]
        fn agrees_with_a_minute_by_minute_reference(
            steps in proptest::collection::vec((0..4usize, 1..600i64), 0..12),
            end in (0..3usize, 1..900i64),
            seed in any::<u64>(),
        ) {
            use EventType::*;
            let mut at = 0;
            let mut held = false;
            let mut events = Vec::new();
            for (_, gap) in &steps {
                at += gap;
                let t = if held { Resumed } else { OnHold };
                held = !held;
                events.push((t, at * MIN));
            }
            at += end.1;
            let closing = [Completed, Cancelled, Rejected][end.0];
            events.push((closing, at * MIN));
            let (expected_state, expected_elapsed) = reference(&events, 240);

            // Shuffle arrival order: the clock must not care.
            let mut shuffled = history(&events);
            let n = shuffled.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let catalog = catalog();
            let fix = catalog.policy("fix").expect("policy");
            let c = last(evaluate(fix, Priority::Routine, &shuffled, Timestamp(0)));
            prop_assert_eq!(c.state, expected_state);
            prop_assert_eq!(c.elapsed, Duration::from_secs(expected_elapsed as u64 * 60));
        }
    }
}
