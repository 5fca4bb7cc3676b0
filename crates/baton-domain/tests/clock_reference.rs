//! The promise clock against a slow, obviously correct reference.
//!
//! The reference walks through time one minute at a time. At each minute it
//! applies the events of that minute, in order, then asks two questions: is the
//! calendar open (the instant turned into wall-clock time in the calendar's
//! IANA zone with jiff, looked up in the weekday's spans and the holiday list),
//! and is the clock running? If both, a minute of working time goes on the
//! clock, and a threshold (target, warning share) that this minute reaches is
//! noted where it is reached. Every event and `now` fall on whole minutes and
//! every calendar boundary does too (European offsets move by whole hours), so
//! a minute is either wholly open or wholly closed and the walk is exact.
//!
//! Nothing from `calendar.rs` is used: the reference's calendar is the table
//! below, from which the catalog's JSON is written for the implementation.
//!
//! Definitions the reference applies, from the `clock` module docs:
//! - elapsed: working time while the clock ran, up to the end (or `now`);
//! - breached when elapsed > target (exactly on target is met); warned when
//!   elapsed > the warning share;
//! - deadline / warn_at: the earliest instant at which the threshold's worth of
//!   working time has run (continuing past `now` while the clock runs).

use std::{collections::BTreeMap, sync::OnceLock, time::Duration};

use baton_domain::{
    clock::{evaluate, ClockOutcome, SlaState},
    Catalog, Envelope, Event, EventType, Policy, Priority, RecordedEvent, Timestamp, Token,
};
use jiff::{civil, tz::TimeZone};
use proptest::prelude::*;

const MIN: i64 = 60_000;

// ---------------------------------------------------------------------------
// The working-hours calendar, as a plain table.

/// A working-hours calendar: zone, spans per weekday (Monday first) as
/// minutes since local midnight `[start, end)`, holidays.
struct Hours {
    id: &'static str,
    zone: &'static str,
    week: [&'static [(u16, u16)]; 7],
    holidays: &'static [&'static str],
}

/// Working hours in Amsterdam around both 2026 DST changes (Sunday 29 March,
/// Sunday 25 October). The Sunday night span 01:00-04:00 straddles the changed
/// hour (two hours long in spring, four in autumn); a Wednesday evening shift
/// ends at 24:00; Thursday starts at midnight. One holiday in each window: the
/// Monday after the spring change, the Friday before the autumn one.
///
/// No span begins or ends inside the changed hour (02:00-03:00 on those
/// Sundays): there "wall-clock time" has no single answer (a 02:30 that never
/// happens, or happens twice), and the reference's minute-by-minute reading
/// and the calendar's span-by-span resolution (jiff's compatible
/// disambiguation) differ by design.
const OFFICE: Hours = Hours {
    id: "office",
    zone: "Europe/Amsterdam",
    week: [
        &[(480, 720), (780, 1020)],
        &[(480, 1020)],
        &[(1320, 1440)],
        &[(0, 360), (480, 1020)],
        &[(480, 1020)],
        &[],
        &[(60, 240)],
    ],
    holidays: &["2026-03-30", "2026-10-23"],
};

/// Where histories on the working-hours calendar begin: three days before
/// each DST change (Sunday 01:00Z), with a holiday close by.
const WINDOWS: [&str; 2] = ["2026-03-26T00:00:00Z", "2026-10-22T00:00:00Z"];
/// Histories start within this many minutes of a window's start (up to the
/// evening of the change)...
const START_SPREAD: i64 = 3 * 1440 + 18 * 60;
/// ...and the table of open minutes reaches this far past it (history, `now`
/// and the deadline still to come).
const TABLE_MINUTES: i64 = 35 * 1440;

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn calendar_json(hours: &Hours) -> String {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let week: Vec<String> = DAYS
        .iter()
        .zip(hours.week.iter())
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(day, spans)| {
            let spans: Vec<String> = spans
                .iter()
                .map(|(s, e)| format!("\"{}-{}\"", hhmm(*s), hhmm(*e)))
                .collect();
            format!("\"{day}\": [{}]", spans.join(", "))
        })
        .collect();
    let holidays: Vec<String> = hours.holidays.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"id": "{}", "time_zone": "{}", "week": {{{}}}, "holidays": [{}]}}"#,
        hours.id,
        hours.zone,
        week.join(", "),
        holidays.join(", ")
    )
}

/// The reference's question: is the minute starting at `minute` (minutes since
/// the epoch) working time? Wall-clock time in the zone, weekday, spans,
/// holidays.
fn open_by_wall_clock(hours: &Hours, tz: &TimeZone, minute: i64) -> bool {
    let local = jiff::Timestamp::from_second(minute * 60)
        .expect("in range")
        .to_zoned(tz.clone());
    let date = local.date();
    if hours
        .holidays
        .iter()
        .any(|h| h.parse::<civil::Date>().expect("date") == date)
    {
        return false;
    }
    let of_day = i32::from(local.hour()) * 60 + i32::from(local.minute());
    hours.week[local.weekday().to_monday_zero_offset() as usize]
        .iter()
        .any(|(s, e)| i32::from(*s) <= of_day && of_day < i32::from(*e))
}

/// Open minutes, worked out once per window (the wall-clock lookup is the
/// slow part; every case then reads the table).
struct OpenTable {
    first_minute: i64,
    open: Vec<bool>,
}

impl OpenTable {
    fn build(hours: &Hours, window: &str) -> OpenTable {
        let tz = TimeZone::get(hours.zone).expect("tzdb");
        let first_minute = window.parse::<jiff::Timestamp>().expect("ts").as_second() / 60;
        let open = (0..TABLE_MINUTES)
            .map(|i| open_by_wall_clock(hours, &tz, first_minute + i))
            .collect();
        OpenTable { first_minute, open }
    }

    fn is_open(&self, minute: i64) -> Option<bool> {
        let i = usize::try_from(minute - self.first_minute).ok()?;
        self.open.get(i).copied()
    }
}

fn office_tables() -> &'static [OpenTable] {
    static TABLES: OnceLock<Vec<OpenTable>> = OnceLock::new();
    TABLES.get_or_init(|| {
        WINDOWS
            .iter()
            .map(|w| OpenTable::build(&OFFICE, w))
            .collect()
    })
}

// ---------------------------------------------------------------------------
// The catalog the implementation reads.

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let json = format!(
            r#"{{"departments": [{{"id": "s0", "name": "S0"}}, {{"id": "s1", "name": "S1"}},
                                {{"id": "s2", "name": "S2"}}, {{"id": "ward", "name": "Ward"}}],
                "kinds": ["consult"],
                "calendars": [{}],
                "promises": [
                  {{"id": "always", "kind": "consult", "start": "requested", "stop": ["acknowledged"],
                    "targets": {{"routine": "30m"}}}},
                  {{"id": "office", "kind": "consult", "start": "requested", "stop": ["acknowledged"],
                    "targets": {{"routine": "30m"}}, "calendar": "office"}}
                ]}}"#,
            calendar_json(&OFFICE)
        );
        Catalog::from_json(&json).expect("catalog")
    })
}

fn token(s: &str) -> Token {
    Token::parse(s).expect("token")
}

// ---------------------------------------------------------------------------
// Generated cases.

/// The promise's shape, drawn per case.
#[derive(Debug, Clone)]
struct Shape {
    start: EventType,
    stop: EventType,
    pauses: bool,
    resets: bool,
    /// Target per priority, in minutes; `None`: no target for that priority.
    targets: [Option<i64>; 3],
    warn_permille: Option<u16>,
    priority: Priority,
}

impl Shape {
    fn policy(&self, template: &Policy) -> Policy {
        let mut policy = template.clone();
        policy.start = self.start;
        policy.stop = vec![self.stop];
        (policy.pause, policy.resume) = if self.pauses {
            (vec![EventType::OnHold], vec![EventType::Resumed])
        } else {
            (vec![], vec![])
        };
        policy.reset = if self.resets {
            vec![EventType::Reassigned]
        } else {
            vec![]
        };
        policy.targets = Priority::ALL
            .iter()
            .zip(self.targets)
            .filter_map(|(p, t)| Some((*p, Duration::from_secs(t? as u64 * 60))))
            .collect();
        policy.warn_at_permille = self.warn_permille;
        policy
    }
}

/// Targets are drawn short (up to `short` minutes, so that histories often
/// land exactly on them) or long (up to `long`).
fn shape(short: i64, long: i64) -> impl Strategy<Value = Shape> {
    use EventType::*;
    let target = proptest::option::weighted(0.85, prop_oneof![1..=short, 1..=long]);
    (
        prop_oneof![3 => Just(Requested), 1 => Just(Started)],
        prop_oneof![Just(Acknowledged), Just(Completed)],
        any::<bool>(),
        any::<bool>(),
        [target.clone(), target.clone(), target],
        proptest::option::weighted(
            0.7,
            prop_oneof![
                Just(800u16),
                Just(750),
                Just(500),
                Just(333),
                Just(1),
                Just(999)
            ],
        ),
        proptest::sample::select(Priority::ALL.to_vec()),
    )
        .prop_map(
            |(start, stop, pauses, resets, targets, warn_permille, priority)| Shape {
                start,
                stop: if stop == start { Completed } else { stop },
                pauses,
                resets,
                targets,
                warn_permille,
                priority,
            },
        )
}

/// One step of a history: what happened, minutes after the previous step
/// (0: the same instant, ordered by version), to whom it was reassigned (for
/// REASSIGNED), and whether the event names the current supplier.
#[derive(Debug, Clone)]
struct Step {
    event_type: EventType,
    gap: i64,
    to: usize,
    names_supplier: bool,
}

fn steps(max_gap: i64, max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    use EventType::*;
    let event_type = prop_oneof![
        4 => Just(OnHold),
        4 => Just(Resumed),
        3 => Just(Reassigned),
        2 => Just(Acknowledged),
        2 => Just(Started),
        1 => Just(Reprioritized),
        1 => Just(Completed),
        1 => Just(Cancelled),
        1 => Just(Rejected),
    ];
    let gap = prop_oneof![1 => Just(0i64), 2 => 1..=5i64, 3 => 1..=max_gap];
    proptest::collection::vec(
        (event_type, gap, 0..3usize, any::<bool>()).prop_map(
            |(event_type, gap, to, names_supplier)| Step {
                event_type,
                gap,
                to,
                names_supplier,
            },
        ),
        0..=max_len,
    )
}

/// The history as recorded: REQUESTED by the ward from supplier s0 at
/// `start_minute`, then the steps, versions in history order, each entered
/// as it happened.
fn history(start_minute: i64, steps: &[Step]) -> Vec<RecordedEvent> {
    let base = Event {
        event_id: "h-1".into(),
        handoff_id: token("h"),
        event_type: EventType::Requested,
        occurred_at: Timestamp(start_minute * MIN),
        kind: Some(token("consult")),
        supplier: Some(token("s0")),
        customer: Some(token("ward")),
        priority: Some(Priority::Routine),
        actor: "desk".into(),
        attributes: BTreeMap::new(),
        rating: None,
    };
    let mut events = vec![recorded(base.clone(), 1)];
    let mut holder = "s0".to_string();
    let mut minute = start_minute;
    for (i, step) in steps.iter().enumerate() {
        minute += step.gap;
        let supplier = if step.event_type == EventType::Reassigned {
            holder = format!("s{}", step.to);
            Some(token(&holder))
        } else if step.names_supplier {
            Some(token(&holder))
        } else {
            None
        };
        let event = Event {
            event_id: format!("h-{}", i + 2),
            event_type: step.event_type,
            occurred_at: Timestamp(minute * MIN),
            kind: None,
            supplier,
            customer: None,
            priority: None,
            ..base.clone()
        };
        events.push(recorded(event, i as u64 + 2));
    }
    events
}

/// `event` recorded at `version` the moment it happened.
fn recorded(event: Event, version: u64) -> RecordedEvent {
    RecordedEvent {
        envelope: Envelope {
            version,
            recorded_at: event.occurred_at,
            sent_by: String::new(),
            backfill: false,
        },
        event,
    }
}

/// Arrival order: a Fisher-Yates shuffle driven by `seed`.
fn shuffled(mut events: Vec<RecordedEvent>, seed: u64) -> Vec<RecordedEvent> {
    let mut s = seed;
    for i in (1..events.len()).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        events.swap(i, (s >> 33) as usize % (i + 1));
    }
    events
}

// ---------------------------------------------------------------------------
// The reference.

/// One cycle as the minute walk sees it.
struct Walk {
    number: u32,
    started_minute: i64,
    running: bool,
    elapsed_ms: i64,
    /// First instant (ms) at which the target's worth had run.
    target_reached: Option<i64>,
    /// First instant (ms) at which the warning share's worth had run.
    warn_reached: Option<i64>,
}

struct Reference<'a> {
    policy: &'a Policy,
    target_ms: i64,
    warn_ms: Option<i64>,
    /// Is the minute starting here working time? `None`: beyond what the
    /// reference can see.
    open: &'a dyn Fn(i64) -> Option<bool>,
}

impl Reference<'_> {
    fn outcome(&self, walk: &Walk, supplier: &str) -> ClockOutcome {
        ClockOutcome {
            policy_id: self.policy.id.clone(),
            cycle: walk.number,
            supplier: Some(token(supplier)),
            state: SlaState::Running,
            target: Duration::from_millis(self.target_ms as u64),
            started_at: Some(Timestamp(walk.started_minute * MIN)),
            stopped_at: None,
            ended_by: None,
            deadline: None,
            warn_at: None,
            warned: false,
            elapsed: Duration::from_millis(walk.elapsed_ms as u64),
        }
    }

    fn ended(
        &self,
        walk: &Walk,
        supplier: &str,
        minute: i64,
        by: EventType,
        within: SlaState,
    ) -> ClockOutcome {
        let breached = walk.elapsed_ms > self.target_ms;
        let warned = self.warn_ms.is_some_and(|w| walk.elapsed_ms > w);
        ClockOutcome {
            state: if breached { SlaState::Breached } else { within },
            stopped_at: Some(Timestamp(minute * MIN)),
            ended_by: Some(by),
            deadline: if breached {
                walk.target_reached.map(Timestamp)
            } else {
                None
            },
            warn_at: if warned {
                walk.warn_reached.map(Timestamp)
            } else {
                None
            },
            warned,
            ..self.outcome(walk, supplier)
        }
    }

    fn never_started(
        &self,
        supplier: &str,
        state: SlaState,
        by: Option<EventType>,
    ) -> ClockOutcome {
        ClockOutcome {
            policy_id: self.policy.id.clone(),
            cycle: 1,
            supplier: Some(token(supplier)),
            state,
            target: Duration::from_millis(self.target_ms as u64),
            started_at: None,
            stopped_at: None,
            ended_by: by,
            deadline: None,
            warn_at: None,
            warned: false,
            elapsed: Duration::ZERO,
        }
    }

    /// The cycles, for `events` in history order (all on whole minutes) and
    /// `now_minute` no earlier than the last event.
    fn run(&self, events: &[RecordedEvent], now_minute: i64) -> Vec<ClockOutcome> {
        let p = self.policy;
        let mut cycles = Vec::new();
        let mut holder = "s0".to_string();
        let mut walk: Option<Walk> = None;
        let mut next = 0;
        let mut minute = events[0].event.occurred_at.0 / MIN;
        let mut at_now: Option<(i64, bool)> = None;
        loop {
            while let Some(e) = events
                .get(next)
                .map(|r| &r.event)
                .filter(|e| e.occurred_at.0 == minute * MIN)
            {
                next += 1;
                let t = e.event_type;
                let named = e.supplier.as_ref().map(|s| s.as_str().to_owned());
                let Some(w) = walk.as_mut() else {
                    holder = named.unwrap_or(holder);
                    if t == p.start {
                        walk = Some(Walk {
                            number: 1,
                            started_minute: minute,
                            running: true,
                            elapsed_ms: 0,
                            target_reached: None,
                            warn_reached: None,
                        });
                    } else if t.is_terminal() {
                        return vec![self.never_started(&holder, SlaState::Cancelled, Some(t))];
                    }
                    continue;
                };
                if p.stop.contains(&t) {
                    holder = named.unwrap_or(holder);
                    cycles.push(self.ended(w, &holder, minute, t, SlaState::Met));
                    return cycles;
                }
                if t.is_terminal() {
                    holder = named.unwrap_or(holder);
                    cycles.push(self.ended(w, &holder, minute, t, SlaState::Cancelled));
                    return cycles;
                }
                if p.reset.contains(&t) {
                    cycles.push(self.ended(w, &holder, minute, t, SlaState::Reset));
                    holder = named.unwrap_or(holder);
                    walk = Some(Walk {
                        number: w.number + 1,
                        started_minute: minute,
                        running: true,
                        elapsed_ms: 0,
                        target_reached: None,
                        warn_reached: None,
                    });
                    continue;
                }
                holder = named.unwrap_or(holder);
                if p.pause.contains(&t) {
                    w.running = false;
                } else if p.resume.contains(&t) {
                    w.running = true;
                }
            }
            let Some(w) = walk.as_mut() else {
                if next == events.len() {
                    return vec![self.never_started(&holder, SlaState::Pending, None)];
                }
                minute += 1;
                continue;
            };
            if minute == now_minute {
                at_now = Some((w.elapsed_ms, w.running));
            }
            let all_reached =
                w.target_reached.is_some() && (self.warn_ms.is_none() || w.warn_reached.is_some());
            if minute >= now_minute && (!w.running || all_reached) {
                break;
            }
            // The minute [minute, minute + 1).
            let Some(open) = (self.open)(minute) else {
                break; // beyond the horizon: thresholds not reached stay None
            };
            if w.running && open {
                let before = w.elapsed_ms;
                let after = before + MIN;
                let reach = |threshold: i64| {
                    (before < threshold && threshold <= after)
                        .then_some(minute * MIN + threshold - before)
                };
                w.target_reached = w.target_reached.or_else(|| reach(self.target_ms));
                w.warn_reached = w.warn_reached.or_else(|| self.warn_ms.and_then(reach));
                w.elapsed_ms = after;
            }
            minute += 1;
        }
        let w = walk.expect("open cycle");
        let (elapsed_ms, running) = at_now.expect("walked to now");
        let breached = elapsed_ms > self.target_ms;
        let warned = self.warn_ms.is_some_and(|m| elapsed_ms > m);
        let state = match (breached, running) {
            (true, _) => SlaState::Breached,
            (false, true) => SlaState::Running,
            (false, false) => SlaState::Paused,
        };
        cycles.push(ClockOutcome {
            state,
            elapsed: Duration::from_millis(elapsed_ms as u64),
            // While it runs, where the thresholds fall (past or future); while
            // paused, only those already passed.
            deadline: w
                .target_reached
                .filter(|_| running || breached)
                .map(Timestamp),
            warn_at: w.warn_reached.filter(|_| running || warned).map(Timestamp),
            warned,
            ..self.outcome(&w, &holder)
        });
        cycles
    }
}

/// Runs one case: the implementation on the shuffled events, the reference on
/// the history, compared field by field.
fn check(
    template: &Policy,
    shape: &Shape,
    events: Vec<RecordedEvent>,
    now_minute: i64,
    seed: u64,
    open: &dyn Fn(i64) -> Option<bool>,
) -> Result<(), TestCaseError> {
    let policy = shape.policy(template);
    let actual = evaluate(
        &policy,
        shape.priority,
        &shuffled(events.clone(), seed),
        Timestamp(now_minute * MIN),
    );
    let Some(target) = policy.target(shape.priority) else {
        prop_assert_eq!(actual, Vec::new());
        return Ok(());
    };
    let target_ms = target.as_millis() as i64;
    let reference = Reference {
        policy: &policy,
        target_ms,
        warn_ms: policy
            .warn_at_permille
            .map(|p| target_ms * i64::from(p) / 1000),
        open,
    };
    let expected = reference.run(&events, now_minute);
    prop_assert_eq!(actual, expected);
    Ok(())
}

/// Cases per property: about 1.5 s each in a debug build.
const CASES: u32 = 8192;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Found failures are pinned as unit tests instead (see below).
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Around the clock: minute-scale histories, targets of minutes to hours.
    #[test]
    fn the_always_clock_agrees_with_the_minute_walk(
        shape in shape(20, 150),
        steps in steps(40, 12),
        start in 0i64..(366 * 1440),
        after in prop_oneof![Just(0i64), 0i64..300],
        seed in any::<u64>(),
    ) {
        let template = catalog().policy("always").expect("policy");
        // 2026, so that nothing is near the epoch.
        let start_minute = 20_454 * 1440 + start;
        let events = history(start_minute, &steps);
        let now_minute = events.last().expect("an event").event.occurred_at.0 / MIN + after;
        check(template, &shape, events, now_minute, seed, &|_| Some(true))?;
    }

    /// Working hours in Amsterdam, across the 2026 DST changes and holidays:
    /// histories of hours to days, targets up to two working days.
    #[test]
    fn the_working_hours_clock_agrees_with_the_minute_walk(
        shape in shape(3 * 60, 16 * 60),
        steps in steps(14 * 60, 8),
        window in 0..WINDOWS.len(),
        start in 0..START_SPREAD,
        after in prop_oneof![Just(0i64), 0i64..(3 * 1440)],
        seed in any::<u64>(),
    ) {
        let template = catalog().policy("office").expect("policy");
        let table = &office_tables()[window];
        let start_minute = table.first_minute + start;
        let events = history(start_minute, &steps);
        let now_minute = events.last().expect("an event").event.occurred_at.0 / MIN + after;
        check(template, &shape, events, now_minute, seed, &|m| table.is_open(m))?;
    }
}

/// The reference's calendar is right where it can be checked by hand.
#[test]
fn the_reference_calendar_follows_the_wall_clock() {
    let tz = TimeZone::get("Europe/Amsterdam").expect("tzdb");
    let minute = |s: &str| s.parse::<jiff::Timestamp>().expect("ts").as_second() / 60;
    let count = |from: &str, to: &str| {
        (minute(from)..minute(to))
            .filter(|m| open_by_wall_clock(&OFFICE, &tz, *m))
            .count()
    };
    // The Sunday night span 01:00-04:00 is two hours long in spring...
    assert_eq!(count("2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"), 120);
    // ...and four in autumn (02:00-03:00 happens twice).
    assert_eq!(count("2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"), 240);
    // Holidays: Monday 30 March, Friday 23 October.
    assert_eq!(count("2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"), 0);
    assert_eq!(count("2026-10-22T22:00:00Z", "2026-10-23T22:00:00Z"), 0);
    // An ordinary Tuesday in CEST: 08:00-17:00 local is 06:00Z-15:00Z.
    assert_eq!(count("2026-03-31T00:00:00Z", "2026-04-01T00:00:00Z"), 540);
    assert!(open_by_wall_clock(
        &OFFICE,
        &tz,
        minute("2026-03-31T06:00:00Z")
    ));
    assert!(!open_by_wall_clock(
        &OFFICE,
        &tz,
        minute("2026-03-31T05:59:00Z")
    ));
}

/// Found by the properties (shrunk): a clock paused exactly on its 8-minute
/// target and resumed a minute later. Its target's worth had run at minute 8,
/// where it paused, as for a clock whose calendar closes there; the clock
/// used to put the deadline where it resumed (minute 9).
#[test]
fn a_clock_paused_exactly_on_target_ran_out_where_it_paused() {
    use EventType::*;
    let shape = Shape {
        start: Requested,
        stop: Acknowledged,
        pauses: true,
        resets: false,
        targets: [Some(8), None, None],
        warn_permille: Some(1000 - 125), // 7 minutes
        priority: Priority::Routine,
    };
    let step = |event_type, gap| Step {
        event_type,
        gap,
        to: 0,
        names_supplier: false,
    };
    let start = 20_454 * 1440; // 2026-01-01T00:00Z
    let template = catalog().policy("always").expect("policy");
    let policy = shape.policy(template);
    let at = |minutes: i64| Timestamp((start + minutes) * MIN);

    // Still open at minute 9: on target, not over it, running again.
    let open = history(
        start,
        &[
            step(OnHold, 7),
            step(Resumed, 0),
            step(OnHold, 1),
            step(Resumed, 1),
        ],
    );
    check(template, &shape, open.clone(), start + 9, 7, &|_| {
        Some(true)
    })
    .expect("agrees");
    let running = evaluate(&policy, Priority::Routine, &open, at(9));
    assert_eq!(
        (
            running[0].state,
            running[0].elapsed,
            running[0].deadline,
            running[0].warn_at
        ),
        (
            SlaState::Running,
            Duration::from_secs(8 * 60),
            Some(at(8)),
            Some(at(7))
        )
    );

    // Stopped at minute 10, after one more minute: breached since minute 8.
    let mut closed = history(
        start,
        &[step(OnHold, 8), step(Resumed, 1), step(Acknowledged, 1)],
    );
    check(template, &shape, closed.clone(), start + 10, 7, &|_| {
        Some(true)
    })
    .expect("agrees");
    closed.reverse();
    let done = evaluate(&policy, Priority::Routine, &closed, at(10));
    assert_eq!(
        (
            done[0].state,
            done[0].elapsed,
            done[0].deadline,
            done[0].warn_at
        ),
        (
            SlaState::Breached,
            Duration::from_secs(9 * 60),
            Some(at(8)),
            Some(at(7))
        )
    );
}
