//! The board's pages as HTML, from data already read from the views.
//!
//! Pure functions of their inputs (and `now`), so they are tested without a
//! server. Each live section is a `<section id=…>` the board's script can
//! replace with the same section fetched again.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use baton_domain::{
    compliance::Tallies,
    event::Priority,
    lifecycle::{Handoff, HandoffStatus},
    Catalog, ClockOutcome, RecordedEvent, SlaState, Timestamp, Token,
};
use baton_views::{BreachRecord, Correction, DisruptionView, HandoffView, MatrixCell, OpenClock};
use jiff::tz::TimeZone;

use super::html::{
    compliance_class, day, duration, handoff_link, instant, percent, put, time_left, Escaped,
};

/// One running clock on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockRow {
    pub deadline: Timestamp,
    pub warn_at: Option<Timestamp>,
    pub policy: Token,
    pub cycle: u32,
    pub handoff_id: Token,
    pub kind: Token,
    pub supplier: Token,
    pub customer: Token,
    pub priority: Priority,
    pub status: HandoffStatus,
    pub target: Duration,
}

/// What rows say a thing is, where the views only hold its id: each
/// department by the name the catalog gives it (its id on hover, linking to
/// the department's own screen; the id alone for a department the catalog
/// does not name), and each hand-off by what its request said (its
/// attributes the catalog lists: the test, the asset, the drug code).
#[derive(Debug, Clone, Default)]
pub struct Names {
    departments: BTreeMap<String, String>,
    requests: BTreeMap<String, Vec<(String, String)>>,
}

impl Names {
    pub fn of(catalog: &Catalog) -> Names {
        Names {
            departments: catalog
                .departments
                .iter()
                .map(|d| (d.id.to_string(), d.name.clone()))
                .collect(),
            requests: BTreeMap::new(),
        }
    }

    /// Remembers what `handoff`'s request said: its attributes the catalog
    /// lists (all of them when it lists none), at most a few.
    pub fn remember_request(&mut self, catalog: &Catalog, handoff: &Handoff) {
        let said: Vec<(String, String)> = baton_views::compact::shown_attributes(catalog, handoff)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !said.is_empty() {
            self.requests.insert(handoff.handoff_id.to_string(), said);
        }
    }

    /// The hand-off `id`, linked to its page, with what its request said.
    fn handoff(&self, out: &mut String, id: &str) {
        handoff_link(out, id);
        for (key, value) in self.requests.get(id).into_iter().flatten() {
            put!(
                out,
                " <span class=\"tag attr\">{} {}</span>",
                Escaped(key),
                Escaped(value)
            );
        }
    }

    /// The department `id` as the board shows it.
    pub fn department(&self, id: &str) -> String {
        match self.departments.get(id).filter(|name| !name.is_empty()) {
            Some(name) => format!(
                "<a class=\"dept\" href=\"/department/{id}\" title=\"{id}\">{name}</a>",
                id = Escaped(id),
                name = Escaped(name)
            ),
            None => format!("<span class=\"dept\">{}</span>", Escaped(id)),
        }
    }

    /// The department's name as plain text (a page title), or its id.
    pub fn plain(&self, id: &str) -> String {
        self.departments
            .get(id)
            .filter(|name| !name.is_empty())
            .cloned()
            .unwrap_or_else(|| id.to_owned())
    }

    /// `supplier → customer`, by name.
    fn pair(&self, supplier: &str, customer: &str) -> String {
        format!(
            "{} &rarr; {}",
            self.department(supplier),
            self.department(customer)
        )
    }
}

/// The running clocks of `open` as board rows, least time left first.
pub fn clock_rows(open: Vec<OpenClock>) -> Vec<ClockRow> {
    let mut rows: Vec<ClockRow> = open
        .into_iter()
        .map(|OpenClock { clock, handoff: h }| ClockRow {
            deadline: clock.deadline,
            warn_at: clock.warn_at,
            cycle: clock.cycle,
            target: clock.target,
            policy: clock.policy_id,
            handoff_id: h.handoff_id,
            kind: h.kind,
            supplier: h.supplier,
            customer: h.customer,
            priority: h.priority,
            status: h.status,
        })
        .collect();
    order_by_time_left(&mut rows);
    rows
}

/// Least time left first; ties by hand-off, so the order is stable.
pub fn order_by_time_left(rows: &mut [ClockRow]) {
    rows.sort_by(|a, b| {
        (a.deadline, &a.handoff_id, &a.policy).cmp(&(b.deadline, &b.handoff_id, &b.policy))
    });
}

/// Open breaches, the most recent first (new ones arrive at the top).
pub fn order_breaches(breaches: &mut [BreachRecord]) {
    breaches.sort_by(|a, b| {
        (b.deadline, &b.handoff_id, &b.policy_id).cmp(&(a.deadline, &a.handoff_id, &a.policy_id))
    });
}

/// Everything on the wall-screen board.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub clocks: Vec<ClockRow>,
    /// Open breaches that were announced, newest first.
    pub breaches: Vec<BreachRecord>,
    /// How many announced breaches are open in all.
    pub breaches_total: usize,
    /// Open breaches from loaded history (never announced), newest first.
    pub history: Vec<BreachRecord>,
    pub history_total: usize,
    pub disruptions: Vec<DisruptionView>,
    pub matrix: BTreeMap<(String, String), MatrixCell>,
    /// The matrix covers clocks started in the last this many days.
    pub matrix_days: u32,
    pub names: std::sync::Arc<Names>,
}

/// The board's body: breaches and running clocks (the warned ones in
/// amber) on the left; disruptions and the matrix on the right.
pub fn board(b: &Board, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    out.push_str("<div class=\"wall\"><div class=\"main-col\">\n");
    out.push_str(&live(b, now, tz));
    out.push_str("</div><div class=\"side-col\">\n");
    out.push_str(&overview(b, now, tz));
    out.push_str("</div></div>\n");
    out
}

/// Breaches and running clocks: what `/board/live` re-sends.
pub fn live(b: &Board, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    put!(
        &mut out,
        "<div id=\"live-sections\" data-now=\"{}\">\n",
        now.0
    );
    let names = b.names.as_ref();
    breaches(
        &mut out,
        names,
        &BREACHES,
        (&b.breaches, b.breaches_total),
        now,
        tz,
    );
    history(&mut out, names, (&b.history, b.history_total), now, tz);
    clocks(&mut out, names, &CLOCKS, &b.clocks, now, tz);
    out.push_str("</div>\n");
    out
}

/// Disruptions and the matrix: what `/board/overview` re-sends.
pub fn overview(b: &Board, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    out.push_str("<div id=\"overview-sections\">\n");
    disruptions(&mut out, &b.names, &b.disruptions, now, tz);
    matrix(&mut out, &b.names, &b.matrix, b.matrix_days);
    put!(
        &mut out,
        "<p class=\"more\"><a href=\"/report/{0}\">{0}: every pair's report</a></p>\n",
        month_of(now, tz)
    );
    out.push_str("</div>\n");
    out
}

/// The calendar month holding `now` in `tz`, as `2026-11`: the address of
/// its report pages.
pub fn month_of(now: Timestamp, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(now.0)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Where a table of rows goes on a page: its section's id (the board's
/// script finds sections and rows by these), its heading and what it says
/// when empty.
struct Table {
    id: &'static str,
    title: &'static str,
    empty: &'static str,
}

const BREACHES: Table = Table {
    id: "breaches",
    title: "Breached, still waiting",
    empty: "No open breaches.",
};

const CLOCKS: Table = Table {
    id: "clocks",
    title: "Running clocks, least time left first",
    empty: "No clock is running.",
};

fn breach_key(r: &BreachRecord) -> String {
    format!("{}/{}/{}", r.policy_id, r.handoff_id, r.cycle)
}

fn breaches(
    out: &mut String,
    names: &Names,
    table: &Table,
    (breaches, total): (&[BreachRecord], usize),
    now: Timestamp,
    tz: &TimeZone,
) {
    let rows = if table.id == BREACHES.id {
        "breach-rows".to_owned()
    } else {
        format!("{}-rows", table.id)
    };
    put!(
        out,
        "<section id=\"{id}\"><h2>{title} <span class=\"count\">{count}</span></h2>\n\
         <table class=\"rows\"><thead><tr><th>over by</th><th>hand-off</th><th>promise</th>\
         <th>supplier &rarr; customer</th><th>priority</th><th>target ran out</th></tr></thead>\
         <tbody id=\"{rows}\">\n",
        id = table.id,
        title = table.title,
        count = count_of(breaches.len(), total)
    );
    breach_rows(out, names, breaches, now, tz);
    if breaches.is_empty() {
        put!(
            out,
            "<tr class=\"empty\"><td colspan=\"6\">{}</td></tr>\n",
            table.empty
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// "12", or "50 of 230" when only some are shown.
fn count_of(shown: usize, total: usize) -> String {
    if total > shown {
        format!("{shown} of {total}")
    } else {
        total.to_string()
    }
}

/// Breaches recorded from loaded history (never announced): apart, so they
/// never push a live breach off the screen.
fn history(
    out: &mut String,
    names: &Names,
    (breaches, total): (&[BreachRecord], usize),
    now: Timestamp,
    tz: &TimeZone,
) {
    if total == 0 {
        return;
    }
    put!(
        out,
        "<section id=\"history-breaches\"><details><summary>From loaded history, never announced \
         <span class=\"count\">{}</span></summary>\n<table class=\"rows dim\"><tbody>\n",
        count_of(breaches.len(), total)
    );
    breach_rows(out, names, breaches, now, tz);
    out.push_str("</tbody></table></details></section>\n");
}

fn breach_rows(
    out: &mut String,
    names: &Names,
    breaches: &[BreachRecord],
    now: Timestamp,
    tz: &TimeZone,
) {
    for r in breaches {
        put!(
            out,
            "<tr class=\"breached\" data-key=\"{key}\"><td class=\"big\"><span class=\"since\" data-since=\"{since}\">+{over}</span></td><td>",
            key = Escaped(&breach_key(r)),
            since = r.deadline.0,
            over = time_left(now.0.saturating_sub(r.deadline.0)),
        );
        names.handoff(out, r.handoff_id.as_str());
        put!(
            out,
            "</td><td><span class=\"id\">{policy}</span>{cycle} <span class=\"dim\">{kind}</span></td><td>{pair}</td><td class=\"prio-{p}\">{p}</td><td>{at}{esc}</td></tr>\n",
            policy = Escaped(r.policy_id.as_str()),
            cycle = cycle_suffix(r.cycle),
            kind = Escaped(r.kind.as_str()),
            pair = names.pair(r.supplier.as_str(), r.customer.as_str()),
            p = r.priority.name(),
            at = instant(r.deadline, now, tz),
            esc = r
                .escalate_to
                .as_ref()
                .map(|t| {
                    let acked = r
                        .acknowledged
                        .as_ref()
                        .map(|a| {
                            format!(
                                " <span class=\"tag acked\">acknowledged by {} {}</span>",
                                Escaped(&a.by),
                                instant(a.at, now, tz)
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        " <span class=\"tag\">escalated to {}</span>{acked}",
                        Escaped(t.as_str())
                    )
                })
                .unwrap_or_default(),
        );
    }
}

fn cycle_suffix(cycle: u32) -> String {
    if cycle > 1 {
        format!(" <span class=\"tag\">cycle {cycle}</span>")
    } else {
        String::new()
    }
}

fn clocks(
    out: &mut String,
    names: &Names,
    table: &Table,
    rows: &[ClockRow],
    now: Timestamp,
    tz: &TimeZone,
) {
    let body = if table.id == CLOCKS.id {
        "clock-rows".to_owned()
    } else {
        format!("{}-rows", table.id)
    };
    put!(
        out,
        "<section id=\"{id}\"><h2>{title} <span class=\"count\">{count}</span></h2>\n\
         <table class=\"rows\"><thead><tr><th>time left</th><th>hand-off</th><th>promise</th>\
         <th>supplier &rarr; customer</th><th>priority</th><th>deadline</th></tr></thead><tbody id=\"{body}\">\n",
        id = table.id,
        title = table.title,
        count = rows.len()
    );
    for row in rows {
        let class = if row.deadline <= now {
            "overdue"
        } else if row.warn_at.is_some_and(|w| w <= now) {
            "warned"
        } else {
            "running"
        };
        put!(
            out,
            "<tr class=\"{class}\" data-clock=\"{p}/{h}\"><td class=\"big\"><span class=\"countdown\" data-deadline=\"{d}\"{warn}>{left}</span></td><td>",
            p = Escaped(row.policy.as_str()),
            h = Escaped(row.handoff_id.as_str()),
            d = row.deadline.0,
            warn = row
                .warn_at
                .map(|w| format!(" data-warn=\"{}\"", w.0))
                .unwrap_or_default(),
            left = time_left(row.deadline.0.saturating_sub(now.0)),
        );
        names.handoff(out, row.handoff_id.as_str());
        put!(
            out,
            "</td><td><span class=\"id\">{policy}</span>{cycle} <span class=\"dim\">{kind}, of {target}</span></td><td>{pair}</td>\
             <td class=\"prio-{p}\">{p}</td><td>{at}</td></tr>\n",
            policy = Escaped(row.policy.as_str()),
            cycle = cycle_suffix(row.cycle),
            kind = Escaped(row.kind.as_str()),
            target = duration(row.target),
            pair = names.pair(row.supplier.as_str(), row.customer.as_str()),
            p = row.priority.name(),
            at = instant(row.deadline, now, tz),
        );
    }
    if rows.is_empty() {
        put!(
            out,
            "<tr class=\"empty\"><td colspan=\"6\">{}</td></tr>\n",
            table.empty
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn disruptions(
    out: &mut String,
    names: &Names,
    list: &[DisruptionView],
    now: Timestamp,
    tz: &TimeZone,
) {
    put!(
        out,
        "<section id=\"disruptions\"><h2>Active disruptions <span class=\"count\">{}</span></h2><ul class=\"cards\">\n",
        list.len()
    );
    for view in list {
        let d = &view.disruption;
        put!(
            out,
            "<li class=\"disruption\"><strong>{s}</strong>{kind}: {reason} <span class=\"dim\">since {since}, {n} hand-off(s) affected</span></li>\n",
            s = names.department(d.supplier.as_str()),
            kind = d
                .kind
                .as_ref()
                .map(|k| format!(" ({})", Escaped(k.as_str())))
                .unwrap_or_default(),
            reason = Escaped(&d.reason),
            since = instant(d.started_at, now, tz),
            n = view.affected,
        );
    }
    if list.is_empty() {
        out.push_str("<li class=\"empty\">None.</li>\n");
    }
    out.push_str("</ul></section>\n");
}

fn matrix(
    out: &mut String,
    names: &Names,
    cells: &BTreeMap<(String, String), MatrixCell>,
    days: u32,
) {
    let suppliers: Vec<&str> = dedup(cells.keys().map(|(s, _)| s.as_str()));
    let customers: Vec<&str> = dedup(cells.keys().map(|(_, c)| c.as_str()));
    put!(
        out,
        "<section id=\"matrix\"><h2>Internal customers, last {days} days</h2>\n"
    );
    if cells.is_empty() {
        out.push_str("<p class=\"empty\">No hand-offs yet.</p></section>\n");
        return;
    }
    out.push_str("<table class=\"matrix\"><thead><tr><th>supplier \\ customer</th>");
    for c in &customers {
        put!(out, "<th>{}</th>", names.department(c));
    }
    out.push_str("</tr></thead><tbody>\n");
    for s in &suppliers {
        put!(out, "<tr><th>{}</th>", names.department(s));
        for c in &customers {
            match cells.get(&((*s).to_owned(), (*c).to_owned())) {
                Some(cell) => matrix_cell(out, s, c, cell),
                None => out.push_str("<td class=\"c-empty\"></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

fn matrix_cell(out: &mut String, supplier: &str, customer: &str, cell: &MatrixCell) {
    let decided = cell.clocks.met + cell.clocks.breached;
    let share = cell.clocks.compliance();
    let class = compliance_class(share, decided);
    let figure = if decided == 0 {
        "&ndash;".to_owned()
    } else {
        percent(share)
    };
    let rating = cell
        .handoffs
        .rating()
        .map(|r| format!("&#9733; {r:.1}"))
        .unwrap_or_else(|| "no rating".to_owned());
    let linkable = Token::parse(supplier).is_ok() && Token::parse(customer).is_ok();
    put!(out, "<td class=\"{class}\">");
    if linkable {
        put!(
            out,
            "<a href=\"/pair/{}/{}\">",
            Escaped(supplier),
            Escaped(customer)
        );
    }
    put!(
        out,
        "<span class=\"figure\">{figure}</span><span class=\"small\">{n} hand-offs</span><span class=\"small\">{rating}</span>",
        n = cell.handoffs.handoffs,
    );
    let late = cell.handoffs.late_entry_corrections;
    if late > 0 {
        put!(
            out,
            "<span class=\"small late-entries\" title=\"announced breaches withdrawn by the supplier's own late entries\">{late} kept only by late entry</span>"
        );
    }
    if linkable {
        out.push_str("</a>");
    }
    out.push_str("</td>");
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One supplier x customer pair over recent days.
#[derive(Debug, Clone)]
pub struct Pair {
    pub supplier: Token,
    pub customer: Token,
    /// Start of each day shown, oldest first, with that day's clocks.
    pub days: Vec<(Timestamp, Tallies)>,
    /// Their announced breaches in the window, largest overrun first.
    pub worst: Vec<BreachRecord>,
    /// Likewise, those from loaded history (never announced).
    pub history: Vec<BreachRecord>,
    pub cell: MatrixCell,
}

/// The pair page's body.
pub fn pair(p: &Pair, names: &Names, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    let mut total = Tallies::default();
    for (_, t) in &p.days {
        total.merge(t);
    }
    let decided = total.met + total.breached;
    put!(
        &mut out,
        "<section><h1>{pair}</h1><p class=\"summary\">\
         <span class=\"figure {class}\">{share}</span> of {decided} decided promise(s) kept over {n} days; \
         {open} running; {h} hand-offs{rating}.</p>\n",
        pair = names.pair(p.supplier.as_str(), p.customer.as_str()),
        class = compliance_class(total.compliance(), decided),
        share = if decided == 0 {
            "&ndash;".to_owned()
        } else {
            percent(total.compliance())
        },
        n = p.days.len(),
        open = total.open,
        h = p.cell.handoffs.handoffs,
        rating = p
            .cell
            .handoffs
            .rating()
            .map(|r| format!(", mean rating {r:.1} of 5"))
            .unwrap_or_default(),
    );
    trend_chart(&mut out, &p.days, tz);
    out.push_str("</section>\n");

    worst_table(&mut out, "Worst hand-offs", &p.worst, now, tz);
    if !p.history.is_empty() {
        worst_table(
            &mut out,
            "Worst hand-offs from loaded history (never announced)",
            &p.history,
            now,
            tz,
        );
    }
    out
}

fn worst_table(
    out: &mut String,
    title: &str,
    worst: &[BreachRecord],
    now: Timestamp,
    tz: &TimeZone,
) {
    put!(
        out,
        "<section><h2>{title}</h2><table class=\"rows\"><thead><tr><th>over by</th><th>hand-off</th>\
         <th>promise</th><th>priority</th><th>target</th><th>target ran out</th><th>stopped</th></tr></thead><tbody>\n"
    );
    for r in worst {
        put!(
            out,
            "<tr class=\"{class}\"><td class=\"big\">+{over}</td><td>",
            class = if r.stopped_at.is_none() {
                "breached"
            } else {
                "closed"
            },
            over = duration(r.overrun(now)),
        );
        handoff_link(out, r.handoff_id.as_str());
        put!(
            out,
            "</td><td>{policy}{cycle}</td><td class=\"prio-{p}\">{p}</td><td>{target}</td><td>{at}</td><td>{stopped}</td></tr>\n",
            policy = Escaped(r.policy_id.as_str()),
            cycle = cycle_suffix(r.cycle),
            p = r.priority.name(),
            target = duration(r.target),
            at = instant(r.deadline, now, tz),
            stopped = r
                .stopped_at
                .map(|t| instant(t, now, tz))
                .unwrap_or_else(|| "still waiting".to_owned()),
        );
    }
    if worst.is_empty() {
        out.push_str("<tr class=\"empty\"><td colspan=\"7\">No breaches.</td></tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

/// Daily compliance as an inline SVG bar chart, with the figures in a
/// table too (for screen readers and for copying).
fn trend_chart(out: &mut String, days: &[(Timestamp, Tallies)], tz: &TimeZone) {
    const BAR: usize = 28;
    const HEIGHT: f64 = 200.0;
    let width = days.len().max(1) * BAR;
    put!(
        out,
        "<svg class=\"trend\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" role=\"img\" aria-label=\"daily compliance\">\
         <line x1=\"0\" x2=\"{width}\" y1=\"{y95:.1}\" y2=\"{y95:.1}\" class=\"target\"/>\
         <text x=\"2\" y=\"{ylabel:.1}\" class=\"axis\">95%</text>",
        h = HEIGHT + 24.0,
        y95 = HEIGHT * 0.05,
        ylabel = HEIGHT * 0.05 + 12.0,
    );
    for (i, (start, t)) in days.iter().enumerate() {
        let x = i * BAR + 3;
        let decided = t.met + t.breached;
        let label = day(*start, tz);
        if decided == 0 {
            put!(
                out,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"2\" class=\"c-none\"><title>{label}: nothing decided</title></rect>",
                y = HEIGHT - 2.0,
                w = BAR - 6,
            );
        } else {
            let share = t.compliance();
            let h = (share * HEIGHT).max(2.0);
            put!(
                out,
                "<rect x=\"{x}\" y=\"{y:.1}\" width=\"{w}\" height=\"{h:.1}\" class=\"{class}\"><title>{label}: {pct} ({met} met, {br} breached)</title></rect>",
                y = HEIGHT - h,
                w = BAR - 6,
                class = compliance_class(share, decided),
                pct = percent(share),
                met = t.met,
                br = t.breached,
            );
        }
        // Every seventh day, counted back from today, is labelled.
        if (days.len() - 1 - i).is_multiple_of(7) {
            // Today's label ends at the right edge, so it is not cut off.
            let (x, anchor) = if i + 1 == days.len() {
                (i * BAR + BAR - 2, "end")
            } else {
                (x, "start")
            };
            put!(
                out,
                "<text x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\" class=\"axis\">{label}</text>",
                y = HEIGHT + 18.0,
                label = Escaped(&label),
            );
        }
    }
    out.push_str("</svg>\n<details><summary>figures by day</summary><table class=\"rows\"><thead><tr><th>day</th><th>kept</th><th>met</th><th>breached</th><th>running</th></tr></thead><tbody>\n");
    for (start, t) in days.iter().rev() {
        if t.is_empty() {
            continue;
        }
        put!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            day(*start, tz),
            percent(t.compliance()),
            t.met,
            t.breached,
            t.open
        );
    }
    out.push_str("</tbody></table></details>\n");
}

/// A hand-off's events for its timeline: read whole from the log, or, when
/// the log could not be read, as the views keep them, with the reason.
#[derive(Debug, Clone, Copy)]
pub enum Story<'a> {
    FromLog(&'a [RecordedEvent]),
    AsClocksRead { why: &'a str },
}

/// The hand-off page's body: header, clocks, and one timeline of events and
/// clock points.
pub fn handoff(
    view: &HandoffView,
    story: Story<'_>,
    clocks: &[ClockOutcome],
    catalog: &Catalog,
    now: Timestamp,
    tz: &TimeZone,
) -> String {
    let mut out = String::new();
    handoff_header(&mut out, view, now, tz);
    promises_table(&mut out, clocks, now, tz);
    out.push_str("<section><h2>Timeline</h2>");
    let events = match story {
        Story::FromLog(events) => events,
        Story::AsClocksRead { why } => {
            put!(
                &mut out,
                "<p class=\"unread\">Shown as the clocks read the events: who sent them and what they said \
                 could not be read from the log ({}).</p>",
                Escaped(why)
            );
            &view.events[..]
        }
    };
    out.push_str("<ol class=\"timeline\">\n");
    for (at, class, text) in timeline(view, events, clocks, catalog, now, tz) {
        put!(
            &mut out,
            "<li class=\"{class}\"><time>{}</time> {text}</li>\n",
            instant(at, now, tz)
        );
    }
    out.push_str("</ol></section>\n");
    out
}

/// Who asks whom for what, how urgently, where it stands, and any
/// disruption it was requested in.
fn handoff_header(out: &mut String, view: &HandoffView, now: Timestamp, tz: &TimeZone) {
    let h = &view.handoff;
    put!(
        out,
        "<section><h1>Hand-off {id}</h1><p class=\"summary\">{kind}: {s} &rarr; {c}, \
         <span class=\"prio-{p}\">{p}</span>, <strong>{status}</strong>, requested {at}{rating}{disr}</p></section>\n",
        id = Escaped(h.handoff_id.as_str()),
        kind = Escaped(h.kind.as_str()),
        s = Escaped(h.supplier.as_str()),
        c = Escaped(h.customer.as_str()),
        p = h.priority.name(),
        status = h.status.name(),
        at = instant(h.requested_at, now, tz),
        rating = h
            .rating
            .map(|r| format!(", rated {r} of 5"))
            .unwrap_or_default(),
        disr = if view.disruptions.is_empty() {
            String::new()
        } else {
            let ids: Vec<String> = view
                .disruptions
                .iter()
                .map(|(d, _)| Escaped(d.as_str()).to_string())
                .collect();
            format!(", requested during disruption {}", ids.join(", "))
        },
    );
}

/// The promises' clocks, one row each.
fn promises_table(out: &mut String, clocks: &[ClockOutcome], now: Timestamp, tz: &TimeZone) {
    out.push_str(
        "<section><h2>Promises</h2><table class=\"rows\"><thead><tr><th>promise</th><th>state</th>\
         <th>supplier</th><th>elapsed / target</th><th>started</th><th>warn at</th><th>deadline</th><th>ended</th></tr></thead><tbody>\n",
    );
    for c in clocks {
        promise_row(out, c, now, tz);
    }
    if clocks.is_empty() {
        out.push_str(
            "<tr class=\"empty\"><td colspan=\"8\">No promise covers this hand-off.</td></tr>\n",
        );
    }
    out.push_str("</tbody></table></section>\n");
}

/// One clock: its state, how much of its target has elapsed, and when it
/// started, warns, is due and ended.
fn promise_row(out: &mut String, c: &ClockOutcome, now: Timestamp, tz: &TimeZone) {
    let share = if c.target.is_zero() {
        0.0
    } else {
        c.elapsed.as_secs_f64() / c.target.as_secs_f64()
    };
    let class = state_class(c, now);
    put!(
        out,
        "<tr class=\"{class}\"><td>{policy}{cycle}</td><td class=\"state\">{state}</td><td>{s}</td>\
         <td>{el} / {target}<div class=\"bar\"><div style=\"width:{w:.0}%\"></div></div></td>\
         <td>{start}</td><td>{warn}</td><td>{deadline}</td><td>{ended}</td></tr>\n",
        policy = Escaped(c.policy_id.as_str()),
        cycle = cycle_suffix(c.cycle),
        state = c.state.name(),
        s = c
            .supplier
            .as_ref()
            .map(|s| Escaped(s.as_str()).to_string())
            .unwrap_or_default(),
        el = duration(c.elapsed),
        target = duration(c.target),
        w = (share * 100.0).clamp(0.0, 100.0),
        start = opt_instant(c.started_at, now, tz),
        warn = opt_instant(c.warn_at, now, tz),
        deadline = opt_instant(c.deadline, now, tz),
        ended = match (c.stopped_at, c.ended_by) {
            (Some(at), Some(by)) => format!("{} by {}", instant(at, now, tz), by.name()),
            (Some(at), None) => instant(at, now, tz),
            _ => "&ndash;".to_owned(),
        },
    );
}

fn opt_instant(at: Option<Timestamp>, now: Timestamp, tz: &TimeZone) -> String {
    at.map(|t| instant(t, now, tz))
        .unwrap_or_else(|| "&ndash;".to_owned())
}

fn state_class(c: &ClockOutcome, now: Timestamp) -> &'static str {
    match c.state {
        SlaState::Breached => "breached",
        SlaState::Running | SlaState::Paused if c.warned || c.warn_at.is_some_and(|w| w <= now) => {
            "warned"
        }
        SlaState::Running | SlaState::Paused => "running",
        SlaState::Met => "met",
        _ => "closed",
    }
}

/// Every event and clock point in time order: (when, CSS class, HTML text).
/// One line of a hand-off's timeline: when, its place among lines at the
/// same instant, its CSS class and its HTML.
type Line = (Timestamp, u8, &'static str, String);

fn timeline(
    view: &HandoffView,
    events: &[RecordedEvent],
    clocks: &[ClockOutcome],
    catalog: &Catalog,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<(Timestamp, &'static str, String)> {
    let mut items: Vec<Line> = Vec::new();
    for r in events {
        items.push((r.event.occurred_at, 0, "event", event_text(r)));
    }
    for c in &view.corrections {
        items.push((c.corrected_at, 6, "met", correction_text(c, now, tz)));
    }
    for c in clocks {
        clock_lines(&mut items, c, view, catalog, now);
    }
    items.sort_by_key(|(at, order, _, _)| (*at, *order));
    items
        .into_iter()
        .map(|(at, _, class, text)| (at, class, text))
        .collect()
}

/// A clock's name on the timeline: its promise, and its cycle after the first.
fn clock_name(policy_id: &str, cycle: u32) -> String {
    if cycle > 1 {
        format!("{} (cycle {cycle})", Escaped(policy_id))
    } else {
        Escaped(policy_id).to_string()
    }
}

fn correction_text(c: &Correction, now: Timestamp, tz: &TimeZone) -> String {
    let cause = &c.cause;
    format!(
        "<strong>correction</strong>: the breach of {} (deadline {}) was withdrawn by \
         {} <span class=\"dim\">{}</span>, entered {} late by {}{}",
        clock_name(c.policy_id.as_str(), c.cycle),
        instant(c.deadline, now, tz),
        cause.event_type.name(),
        Escaped(&cause.event_id),
        duration(cause.entry_lag),
        if cause.sent_by.is_empty() {
            "an unauthenticated caller".to_owned()
        } else {
            Escaped(&cause.sent_by).to_string()
        },
        if cause.by_supplier {
            ": the supplier's own late entry"
        } else {
            ""
        }
    )
}

/// A clock's lines: started, paused and resumed, warned, its deadline
/// (breached, or still ahead), ended.
fn clock_lines(
    items: &mut Vec<Line>,
    c: &ClockOutcome,
    view: &HandoffView,
    catalog: &Catalog,
    now: Timestamp,
) {
    let name = clock_name(c.policy_id.as_str(), c.cycle);
    let Some(started) = c.started_at else {
        return;
    };
    let target = duration(c.target);
    items.push((
        started,
        1,
        "clock",
        format!("clock <strong>{name}</strong> started, target {target}"),
    ));
    let end = c.stopped_at.unwrap_or(now);
    if let Some(policy) = catalog.policy(c.policy_id.as_str()) {
        for e in view
            .events
            .iter()
            .map(|r| &r.event)
            .filter(|e| (started..=end).contains(&e.occurred_at))
        {
            if policy.pause.contains(&e.event_type) {
                items.push((e.occurred_at, 2, "pause", format!("clock {name} paused")));
            } else if policy.resume.contains(&e.event_type) {
                items.push((e.occurred_at, 2, "clock", format!("clock {name} resumed")));
            }
        }
    }
    if let Some(warn) = c.warn_at.filter(|w| *w <= end) {
        let text = format!("clock {name} passed its warning point");
        items.push((warn, 3, "warned", text));
    }
    let escalated = catalog
        .policy(c.policy_id.as_str())
        .and_then(|p| p.escalate_to.as_ref())
        .map(|to| format!(", escalated to <strong>{}</strong>", Escaped(to.as_str())))
        .unwrap_or_default();
    match (c.state, c.deadline) {
        (SlaState::Breached, Some(deadline)) => items.push((
            deadline,
            4,
            "breached",
            format!(
                "<strong>breach</strong>: clock {name} ran out of its {target} target{escalated}"
            ),
        )),
        (SlaState::Running, Some(deadline)) => items.push((
            deadline,
            4,
            "future",
            format!("clock {name} runs out (if nothing happens)"),
        )),
        _ => {}
    }
    if let Some(stopped) = c.stopped_at {
        let text = format!(
            "clock {name} ended <strong>{}</strong> after {}",
            c.state.name(),
            duration(c.elapsed)
        );
        items.push((stopped, 5, "clock", text));
    }
}

fn event_text(r: &RecordedEvent) -> String {
    let (e, envelope) = (&r.event, &r.envelope);
    let mut text = format!("<strong>{}</strong>", e.event_type.name());
    if let Some(s) = &e.supplier {
        let _ = write!(text, " supplier {}", Escaped(s.as_str()));
    }
    if let Some(p) = e.priority {
        let _ = write!(text, " priority {}", p.name());
    }
    if !e.actor.is_empty() {
        let _ = write!(text, " <span class=\"dim\">by {}</span>", Escaped(&e.actor));
    }
    for (k, v) in &e.attributes {
        let _ = write!(
            text,
            " <span class=\"tag\">{}={}</span>",
            Escaped(k),
            Escaped(v)
        );
    }
    if let Some(r) = &e.rating {
        let _ = write!(text, " rated {} of 5", r.score);
        if !r.comment.is_empty() {
            let _ = write!(text, ": &ldquo;{}&rdquo;", Escaped(&r.comment));
        }
    }
    let lag = r.entry_lag();
    if lag.as_secs() >= 1 {
        let _ = write!(
            text,
            " <span class=\"dim\">(entered {} later{})</span>",
            duration(lag),
            if envelope.backfill {
                ", as history"
            } else {
                ""
            }
        );
    }
    if !envelope.sent_by.is_empty() {
        let _ = write!(
            text,
            " <span class=\"dim\">sent by {}</span>",
            Escaped(&envelope.sent_by)
        );
    }
    text
}

mod department;
pub use department::{department, Department, Standing};

#[cfg(test)]
mod tests;
