//! A department's own screen, `/department/<id>`: the lab's wall shows the
//! lab's work. How it kept its promises, and others kept theirs to it,
//! this week and this month; its breaches today; what it owes (its running
//! clocks as supplier, least time left first); and, beside them, what it
//! waits for (its requests to others).

use baton_domain::{compliance::Tallies, Timestamp, Token};
use baton_views::BreachRecord;
use jiff::tz::TimeZone;

use super::{breaches, clocks, ClockRow, Names, Table};
use crate::board::html::{compliance_class, percent, Escaped};

/// How a department stood over one stretch of time, on both sides.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    /// `this week`, `this month`.
    pub label: &'static str,
    pub as_supplier: Tallies,
    pub as_customer: Tallies,
}

/// Everything on a department's screen.
#[derive(Debug, Clone)]
pub struct Department {
    pub id: Token,
    /// Its running clocks as supplier, least time left first.
    pub owes: Vec<ClockRow>,
    /// Its requests to others that are still running.
    pub awaits: Vec<ClockRow>,
    /// Its breaches as supplier whose target ran out today, newest first.
    pub breaches_today: Vec<BreachRecord>,
    pub standings: Vec<Standing>,
}

const OWES: Table = Table {
    id: "owes",
    title: "Owed to others, least time left first",
    empty: "Nothing is waiting on this department.",
};

const AWAITS: Table = Table {
    id: "awaits",
    title: "Waiting for others",
    empty: "This department is waiting for nobody.",
};

const TODAY: Table = Table {
    id: "breaches-today",
    title: "Its breaches today",
    empty: "No promise broken today.",
};

/// The department page's body.
pub fn department(d: &Department, names: &Names, now: Timestamp, tz: &TimeZone) -> String {
    let mut out = String::new();
    out.push_str("<div id=\"live-sections\" class=\"wall\"><div class=\"main-col\">\n");
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "<section id=\"department\"><h1>{}</h1>",
            names.department(d.id.as_str())
        ),
    );
    standings(&mut out, &d.standings);
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "<p class=\"more\"><a href=\"/report/{}/{month}\">{month}: its report card</a></p>",
            Escaped(d.id.as_str()),
            month = super::month_of(now, tz)
        ),
    );
    out.push_str("</section>\n");
    breaches(
        &mut out,
        names,
        &TODAY,
        (&d.breaches_today, d.breaches_today.len()),
        now,
        tz,
    );
    clocks(&mut out, names, &OWES, &d.owes, now, tz);
    out.push_str("</div><div class=\"side-col\">\n");
    clocks(&mut out, names, &AWAITS, &d.awaits, now, tz);
    out.push_str("</div></div>\n");
    out
}

/// Promises kept, as supplier and as customer, per stretch of time; `-`
/// where nothing was decided.
fn standings(out: &mut String, standings: &[Standing]) {
    out.push_str(
        "<table class=\"rows standings\"><thead><tr><th></th><th>its promises kept</th>\
         <th>promises to it kept</th></tr></thead><tbody>\n",
    );
    for s in standings {
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "<tr><th>{}</th>{}{}</tr>\n",
                Escaped(s.label),
                kept(&s.as_supplier),
                kept(&s.as_customer)
            ),
        );
    }
    out.push_str("</tbody></table>\n");
}

fn kept(t: &Tallies) -> String {
    let decided = t.met + t.breached;
    let figure = if decided == 0 {
        "&ndash;".to_owned()
    } else {
        percent(t.compliance())
    };
    format!(
        "<td><span class=\"figure {class}\">{figure}</span> <span class=\"dim\">{met} kept, {breached} broken, {open} running</span></td>",
        class = compliance_class(t.compliance(), decided),
        met = t.met,
        breached = t.breached,
        open = t.open,
    )
}
