//! Rendering tests: real views in a temporary sled store, filled through the
//! projection, rendered as the board would render them.

use std::collections::BTreeMap;

use baton_domain::{
    event::{EventType, Priority},
    Catalog, Envelope, Event, RecordedEvent, Timestamp, Token,
};
use baton_views::{
    projection::clocks_of, BreachFilter, HandoffFilter, MatrixCell, Projection, Views,
};

use super::*;

const MIN: i64 = 60_000;
const HOSTILE: &str = "<script>alert('x')</script>\"&";

fn catalog() -> Catalog {
    Catalog::from_json(
        r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "lab", "name": "L"},
                            {"id": "ward-5", "name": "W5"}, {"id": "ward-6", "name": "W6"}],
            "kinds": ["repair", "lab"],
            "promises": [
              {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
               "targets": {"routine": "30m", "stat": "10m"}, "warn_at": 0.5},
              {"id": "lab-turnaround", "kind": "lab", "start": "requested", "stop": ["completed"],
               "pause": ["on_hold"], "resume": ["resumed"], "targets": {"routine": "4h"}}]}"#,
    )
    .expect("catalog")
}

fn t(s: &str) -> Token {
    Token::parse(s).expect("token")
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

fn requested(
    handoff: &str,
    kind: &str,
    supplier: &str,
    priority: Priority,
    at: i64,
) -> RecordedEvent {
    let event = Event {
        event_id: format!("{handoff}-1"),
        handoff_id: t(handoff),
        event_type: EventType::Requested,
        occurred_at: Timestamp(at),
        kind: Some(t(kind)),
        supplier: Some(t(supplier)),
        customer: Some(t("ward-5")),
        priority: Some(priority),
        actor: HOSTILE.to_owned(),
        attributes: BTreeMap::from([("note".to_owned(), HOSTILE.to_owned())]),
        rating: None,
    };
    recorded(event, 1)
}

fn later(handoff: &str, event_type: EventType, at: i64, version: u64) -> RecordedEvent {
    let event = Event {
        event_id: format!("{handoff}-{version}"),
        handoff_id: t(handoff),
        event_type,
        occurred_at: Timestamp(at),
        kind: None,
        supplier: None,
        customer: None,
        priority: None,
        actor: String::new(),
        attributes: BTreeMap::new(),
        rating: None,
    };
    recorded(event, version)
}

/// Views holding: a routine repair (deadline 30m), a STAT repair requested
/// later (deadline 15m, so less time left), a lab test (4h) put on hold and
/// resumed, and a repair breached at 10m and never acknowledged.
fn filled(catalog: &Catalog) -> (tempfile::TempDir, Views) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (views, _) = Views::open(dir.path(), catalog.version()).expect("open");
    let mut p = Projection::new(&views, catalog).expect("projection");
    for (i, e) in logged().into_iter().enumerate() {
        let at = e.envelope.recorded_at;
        p.apply(i as u64 + 1, at, e).expect("apply");
    }
    p.advance(Timestamp(11 * MIN)).expect("advance");
    p.commit().expect("commit");
    (dir, views)
}

/// The hand-off's events as the log holds them (the page's story).
fn log_of(handoff: &str) -> Vec<RecordedEvent> {
    let mut events = logged();
    events.retain(|e| e.event.handoff_id.as_str() == handoff);
    events
}

/// Every event `filled` applies, in stream order.
fn logged() -> Vec<RecordedEvent> {
    vec![
        requested("late", "repair", "engineering", Priority::Stat, 0),
        requested("routine", "repair", "engineering", Priority::Routine, 0),
        requested("stat", "repair", "engineering", Priority::Stat, 5 * MIN),
        requested("lab-1", "lab", "lab", Priority::Routine, MIN),
        later("lab-1", EventType::OnHold, 2 * MIN, 2),
        later("lab-1", EventType::Resumed, 3 * MIN, 3),
    ]
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

fn board_of(views: &Views, catalog: &Catalog) -> Board {
    let open = views
        .open_clocks(&HandoffFilter::default(), 50)
        .expect("open clocks");
    let (breaches, breaches_total) = views.open_breaches(true, 100).expect("breaches");
    let (history, history_total) = views.open_breaches(false, 5).expect("history");
    Board {
        clocks: clock_rows(open),
        breaches,
        breaches_total,
        history,
        history_total,
        disruptions: Vec::new(),
        matrix: views.matrix(None, None).expect("matrix"),
        matrix_days: 30,
        names: std::sync::Arc::new(Names::of(catalog)),
    }
}

#[test]
fn running_clocks_are_listed_by_time_left() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);
    let board = board_of(&views, &catalog);
    let ids: Vec<&str> = board.clocks.iter().map(|r| r.handoff_id.as_str()).collect();
    assert_eq!(ids, ["stat", "routine", "lab-1"]);

    let html = board_page(&board, now);
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} not on the board"))
    };
    assert!(
        at("data-clock=\"repair-response/stat\"") < at("data-clock=\"repair-response/routine\"")
    );
    assert!(
        at("data-clock=\"repair-response/routine\"") < at("data-clock=\"lab-turnaround/lab-1\"")
    );
    // 15m deadline at 12m: 3 minutes left, and past its 50% warning.
    assert!(html.contains("<tr class=\"warned\" data-clock=\"repair-response/stat\""));
    assert!(html.contains(">03:00</span>"));
    // The breached repair is in the breach list, not among running clocks.
    assert!(html.contains("data-key=\"repair-response/late/1\""));
    assert!(!html.contains("data-clock=\"repair-response/late\""));
}

#[test]
fn ordering_does_not_trust_its_input() {
    let row = |id: &str, deadline: i64| ClockRow {
        deadline: Timestamp(deadline),
        warn_at: None,
        policy: t("p"),
        cycle: 1,
        handoff_id: t(id),
        kind: t("repair"),
        supplier: t("engineering"),
        customer: t("ward-5"),
        priority: Priority::Routine,
        status: HandoffStatus::Requested,
        target: Duration::from_secs(60),
    };
    let mut rows = vec![row("c", 30), row("a", 10), row("b", 30), row("d", -5)];
    order_by_time_left(&mut rows);
    let ids: Vec<&str> = rows.iter().map(|r| r.handoff_id.as_str()).collect();
    assert_eq!(ids, ["d", "a", "b", "c"]);
}

fn board_page(board: &Board, now: Timestamp) -> String {
    super::board(board, now, &utc())
}

#[test]
fn nothing_a_client_sent_becomes_markup() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);
    let view = views.handoff(&t("lab-1")).expect("read").expect("lab-1");
    let clocks = clocks_of(&catalog, &view.handoff, &view.events, now);
    let story = log_of("lab-1");
    let html = handoff(
        &view,
        Story::FromLog(&story),
        &clocks,
        &catalog,
        now,
        &utc(),
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));

    // Matrix keys and disruption reasons are escaped too; a name that is not
    // a token is not made into a link.
    let mut board = board_of(&views, &catalog);
    board.matrix.insert(
        (HOSTILE.to_owned(), "ward-5".to_owned()),
        MatrixCell::default(),
    );
    board.disruptions.push(baton_views::DisruptionView {
        disruption: baton_domain::disruption::Disruption {
            disruption_id: t("d-1"),
            supplier: t("lab"),
            kind: None,
            scope: BTreeMap::new(),
            reason: HOSTILE.to_owned(),
            started_at: Timestamp(0),
            ended_at: None,
            announced_at: Some(Timestamp(0)),
        },
        last_sequence: 1,
        affected: 2,
        failed_before_announcement: 0,
    });
    let html = board_page(&board, now);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("href=\"/pair/&lt;"));
    assert!(html.contains("href=\"/pair/engineering/ward-5\""));
}

#[test]
fn a_handoff_timeline_shows_pauses_and_the_breach_point() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);

    let lab = views.handoff(&t("lab-1")).expect("read").expect("lab-1");
    let clocks = clocks_of(&catalog, &lab.handoff, &lab.events, now);
    let html = handoff(
        &lab,
        Story::FromLog(&log_of("lab-1")),
        &clocks,
        &catalog,
        now,
        &utc(),
    );
    let paused = html
        .find("clock lab-turnaround paused")
        .expect("pause shown");
    let resumed = html
        .find("clock lab-turnaround resumed")
        .expect("resume shown");
    assert!(paused < resumed);
    assert!(html.contains("runs out (if nothing happens)"));

    let late = views.handoff(&t("late")).expect("read").expect("late");
    let clocks = clocks_of(&catalog, &late.handoff, &late.events, now);
    let html = handoff(
        &late,
        Story::FromLog(&log_of("late")),
        &clocks,
        &catalog,
        now,
        &utc(),
    );
    assert!(
        html.contains("<li class=\"breached\"><time>00:10:00</time> <strong>breach</strong>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"state\">breached</td>"));
}

#[test]
fn a_handoff_timeline_shows_how_late_events_were_entered_and_what_they_withdrew() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let mut view = views.handoff(&t("late")).expect("read").expect("late");
    let mut ack = later("late", EventType::Acknowledged, 9 * MIN, 2);
    ack.envelope.recorded_at = Timestamp(12 * MIN);
    ack.envelope.sent_by = "engineering-desk".into();
    view.events.push(ack.clone());
    let mut story = log_of("late");
    story.push(ack.clone());
    view.corrections.push(baton_views::Correction {
        policy_id: t("repair-response"),
        cycle: 1,
        deadline: Timestamp(10 * MIN),
        corrected_at: Timestamp(12 * MIN),
        cause: baton_views::Cause::of(&ack),
    });
    let now = Timestamp(13 * MIN);
    let clocks = clocks_of(&catalog, &view.handoff, &view.events, now);
    let html = handoff(
        &view,
        Story::FromLog(&story),
        &clocks,
        &catalog,
        now,
        &utc(),
    );
    assert!(html.contains("(entered 3m later)"), "{html}");
    assert!(html.contains("sent by engineering-desk"), "{html}");
    assert!(
        html.contains("<li class=\"met\"><time>00:12:00</time> <strong>correction</strong>: the breach of repair-response (deadline 00:10:00) was withdrawn by acknowledged"),
        "{html}"
    );
    assert!(html.contains("the supplier's own late entry"), "{html}");
}

#[test]
fn the_matrix_shows_breaches_kept_only_by_late_entries() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);
    let mut board = board_of(&views, &catalog);
    let html = board_page(&board, now);
    assert!(!html.contains("kept only by late entry"), "none yet");
    let cell = board
        .matrix
        .get_mut(&("engineering".to_owned(), "ward-5".to_owned()))
        .expect("the engineering cell");
    cell.handoffs.late_entry_corrections = 2;
    let html = board_page(&board, now);
    assert!(html.contains(">2 kept only by late entry</span>"), "{html}");
}

#[test]
fn a_pair_page_charts_each_day_and_lists_the_worst_first() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);
    let mut worst = views
        .list_breaches(&BreachFilter::default(), None, 10)
        .expect("breaches")
        .items;
    let mut smaller = worst[0].clone();
    smaller.handoff_id = t("smaller");
    smaller.elapsed = Some(Duration::from_secs(601));
    worst.push(smaller);
    worst.sort_by_key(|r| std::cmp::Reverse(r.overrun(now)));
    let tallies = Tallies {
        met: 3,
        breached: 1,
        ..Tallies::default()
    };
    let pair = Pair {
        supplier: t("engineering"),
        customer: t("ward-5"),
        days: vec![
            (Timestamp(-86_400_000), Tallies::default()),
            (Timestamp(0), tallies),
        ],
        worst,
        history: Vec::new(),
        cell: MatrixCell::default(),
    };
    let html = super::pair(&pair, &Names::of(&catalog), now, &utc());
    assert!(
        html.contains("<span class=\"figure c-poor\">75%</span>"),
        "{html}"
    );
    assert_eq!(html.matches("<rect ").count(), 2);
    assert!(html.contains("class=\"c-poor\"><title>Thu 01 Jan: 75% (3 met, 1 breached)</title>"));
    let late = html.find("/handoff/late").expect("late listed");
    let smaller = html.find("/handoff/smaller").expect("smaller listed");
    assert!(late < smaller, "largest overrun first");
}

#[test]
fn rows_name_departments_and_keep_the_id_on_hover() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let now = Timestamp(12 * MIN);
    let html = board_page(&board_of(&views, &catalog), now);
    let running = html
        .split("data-clock=\"repair-response/stat\"")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the stat clock's row");
    assert!(
        running.contains("<a class=\"dept\" href=\"/department/engineering\" title=\"engineering\">E</a> &rarr; <a class=\"dept\" href=\"/department/ward-5\" title=\"ward-5\">W5</a>"),
        "{running}"
    );
    assert!(running.contains("repair, of 10m"), "the kind: {running}");
    assert!(
        !html.contains("id=\"warnings\""),
        "warned clocks show once, in amber among the running ones"
    );
    assert!(
        Names::default().department("icu").contains(">icu<"),
        "a department the catalog does not name shows its id"
    );
}

#[test]
fn a_breach_on_the_timeline_says_whom_it_was_escalated_to() {
    let catalog = catalog();
    let (_dir, views) = filled(&catalog);
    let late = views.handoff(&t("late")).expect("read").expect("late");
    let now = Timestamp(12 * MIN);
    let mut escalating = catalog.clone();
    for promise in &mut escalating.promises {
        promise.escalate_to = Some(t("duty-coordinator"));
    }
    let clocks = clocks_of(&escalating, &late.handoff, &late.events, now);
    let story = log_of("late");
    let html = handoff(
        &late,
        Story::FromLog(&story),
        &clocks,
        &escalating,
        now,
        &utc(),
    );
    assert!(
        html.contains("ran out of its 10m target, escalated to <strong>duty-coordinator</strong>"),
        "{html}"
    );
    let quiet = handoff(
        &late,
        Story::FromLog(&story),
        &clocks,
        &catalog,
        now,
        &utc(),
    );
    assert!(!quiet.contains("escalated"), "{quiet}");
}
