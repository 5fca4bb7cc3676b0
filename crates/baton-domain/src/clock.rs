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
//! - Time runs only inside the promise's calendar: around the clock for
//!   `always`, within working hours otherwise; the deadline is the instant
//!   the target's worth of calendar time has run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    catalog::Policy,
    event::{Event, Priority},
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
        }
    }
}

/// One promise's clock on one hand-off, as of `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOutcome {
    pub policy_id: Token,
    pub state: SlaState,
    pub target: Duration,
    pub started_at: Option<Timestamp>,
    /// When the clock stopped (stop event) or ended (cancelled, rejected).
    pub stopped_at: Option<Timestamp>,
    /// When the target runs out while the clock runs; for a breached clock,
    /// when it ran out. `None` while pending or paused within target.
    pub deadline: Option<Timestamp>,
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
}

/// Where the walk over events ended.
enum End {
    /// Still running (or paused) at `now`.
    Open,
    Stopped(Timestamp),
    Cancelled(Timestamp),
}

/// Evaluates `policy`'s clock over a hand-off's recorded events (any order;
/// ties on `occurred_at` are broken by version) for a hand-off of
/// `priority`. Returns `None` if the promise has no target for the priority.
pub fn evaluate(
    policy: &Policy,
    priority: Priority,
    events: &[Event],
    now: Timestamp,
) -> Option<ClockOutcome> {
    let target = policy.target(priority)?;
    let target_ms = duration_millis(target);
    let mut ordered: Vec<&Event> = events.iter().collect();
    ordered.sort_by_key(|e| (e.occurred_at, e.version));

    let mut outcome = ClockOutcome {
        policy_id: policy.id.clone(),
        state: SlaState::Pending,
        target,
        started_at: None,
        stopped_at: None,
        deadline: None,
        elapsed: Duration::ZERO,
    };

    // Run time accumulated over closed running spans, the start of the
    // current running span (None while paused), and when the target ran out.
    let mut elapsed_ms: i64 = 0;
    let mut running_since: Option<Timestamp> = None;
    let mut ran_out_at: Option<Timestamp> = None;
    let mut end = End::Open;
    let mut closed_before_start = false;

    let calendar = &policy.calendar;
    // Working time still left on the clock, from `since`.
    let remaining = |elapsed_ms: i64| Duration::from_millis((target_ms - elapsed_ms).max(0) as u64);
    let mut run_until = |until: Timestamp, elapsed_ms: &mut i64, since: Timestamp| {
        let span = duration_millis(calendar.working_between(since, until));
        if ran_out_at.is_none() && *elapsed_ms + span > target_ms {
            ran_out_at = calendar.add_working(since, remaining(*elapsed_ms));
        }
        *elapsed_ms += span;
    };

    for event in ordered {
        if outcome.started_at.is_none() {
            if event.event_type == policy.start {
                outcome.started_at = Some(event.occurred_at);
                running_since = Some(event.occurred_at);
            } else if event.event_type.is_terminal() {
                closed_before_start = true;
                break;
            }
            continue;
        }
        let at = event.occurred_at;
        let t = event.event_type;
        if policy.stop.contains(&t) || t.is_terminal() {
            if let Some(since) = running_since.take() {
                run_until(at, &mut elapsed_ms, since);
            }
            end = if policy.stop.contains(&t) {
                End::Stopped(at)
            } else {
                End::Cancelled(at)
            };
            break;
        }
        if policy.pause.contains(&t) {
            if let Some(since) = running_since.take() {
                run_until(at, &mut elapsed_ms, since);
            }
        } else if policy.resume.contains(&t) && running_since.is_none() {
            running_since = Some(at);
        }
    }

    if outcome.started_at.is_none() {
        if closed_before_start {
            outcome.state = SlaState::Cancelled;
        }
        return Some(outcome);
    }

    match end {
        End::Stopped(at) | End::Cancelled(at) => {
            outcome.stopped_at = Some(at);
            outcome.elapsed = Duration::from_millis(elapsed_ms as u64);
            outcome.deadline = ran_out_at;
            outcome.state = match (ran_out_at, &end) {
                (Some(_), _) => SlaState::Breached,
                (None, End::Stopped(_)) => SlaState::Met,
                (None, _) => SlaState::Cancelled,
            };
        }
        End::Open => {
            let mut total_ms = elapsed_ms;
            if let Some(since) = running_since {
                // The deadline is where the running span reaches the target.
                outcome.deadline =
                    ran_out_at.or_else(|| calendar.add_working(since, remaining(elapsed_ms)));
                total_ms += duration_millis(calendar.working_between(since, now));
            } else {
                outcome.deadline = ran_out_at;
            }
            outcome.elapsed = Duration::from_millis(total_ms.max(0) as u64);
            outcome.state = if total_ms > target_ms {
                SlaState::Breached
            } else if running_since.is_some() {
                SlaState::Running
            } else {
                SlaState::Paused
            };
        }
    }
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        catalog::Catalog,
        event::{
            tests::{later, requested},
            EventType,
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

    fn history(steps: &[(EventType, i64)]) -> Vec<Event> {
        let mut events = vec![requested("h1", 0)];
        for (i, (t, at)) in steps.iter().enumerate() {
            let mut e = later("h1", *t, *at);
            e.version = i as u64 + 2;
            events.push(e);
        }
        events[0].version = 1;
        events
    }

    fn clock(policy: &str, steps: &[(EventType, i64)], now: i64) -> ClockOutcome {
        let catalog = catalog();
        let policy = catalog.policy(policy).expect("policy");
        evaluate(policy, Priority::Routine, &history(steps), Timestamp(now)).expect("target")
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
            evaluate(policy, Priority::Routine, &open, Timestamp(0)).map(|c| c.state),
            Some(SlaState::Pending)
        );
        let closed = history(&[(EventType::Cancelled, MIN)]);
        assert_eq!(
            evaluate(policy, Priority::Routine, &closed, Timestamp(0)).map(|c| c.state),
            Some(SlaState::Cancelled)
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
        let mut events = vec![requested("h1", monday_16h)];
        events[0].version = 1;
        let tuesday_8h = (5 * 24 + 8) * 60 * MIN;
        let overnight =
            evaluate(policy, Priority::Routine, &events, Timestamp(tuesday_8h)).expect("target");
        assert_eq!(overnight.state, SlaState::Running);
        assert_eq!(
            overnight.elapsed,
            Duration::from_secs(3600),
            "the night did not count"
        );
        assert_eq!(overnight.deadline, Some(Timestamp(tuesday_8h + 60 * MIN)));
        let mut done = later("h1", EventType::Completed, tuesday_8h + 90 * MIN);
        done.version = 2;
        events.push(done);
        let late = evaluate(policy, Priority::Routine, &events, Timestamp(0)).expect("target");
        assert_eq!(
            (late.state, late.elapsed),
            (SlaState::Breached, Duration::from_secs(150 * 60))
        );
        assert_eq!(late.deadline, Some(Timestamp(tuesday_8h + 60 * MIN)));
    }

    #[test]
    fn priority_without_a_target_has_no_clock() {
        let catalog = catalog();
        let fix = catalog.policy("fix").expect("policy");
        assert_eq!(
            evaluate(fix, Priority::Stat, &history(&[]), Timestamp(0)),
            None
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

    proptest! {
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
            let c = evaluate(fix, Priority::Routine, &shuffled, Timestamp(0)).expect("target");
            prop_assert_eq!(c.state, expected_state);
            prop_assert_eq!(c.elapsed, Duration::from_secs(expected_elapsed as u64 * 60));
        }
    }
}
