//! The report card as text, CSV or a printable HTML page: the same rows in
//! each, from one [`Report`].

use std::fmt::Write as _;

use baton_proto::v1;

use crate::{Report, Role, Side, Summary};

/// One table of the report: a title, its column names, its rows.
#[derive(Debug)]
pub struct Table {
    title: String,
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// A page of tables: a heading, and for CSV the department and month every
/// row is about.
#[derive(Debug)]
pub struct Page {
    pub heading: String,
    pub department: String,
    pub month: String,
    pub tables: Vec<Table>,
}

impl Page {
    pub fn of_report(report: &Report) -> Page {
        Page {
            heading: format!(
                "Report card: {} ({}) for {} ({})",
                report.department_name, report.department, report.month.label, report.time_zone
            ),
            department: report.department.clone(),
            month: report.month.label.clone(),
            tables: tables(report),
        }
    }

    pub fn of_summary(summary: &Summary) -> Page {
        Page {
            heading: format!(
                "Every pair's promises kept: {} beside {} ({})",
                summary.month.label, summary.before.label, summary.time_zone
            ),
            department: "all".to_owned(),
            month: summary.month.label.clone(),
            tables: vec![summary_table(summary)],
        }
    }
}

fn summary_table(summary: &Summary) -> Table {
    let kept = |c: Option<&v1::MatrixCell>| match c {
        Some(c) => share_kept(c.compliance, c.met + c.breached),
        None => "-".to_owned(),
    };
    let rows = summary
        .pairs
        .iter()
        .map(|(now, before)| {
            let cell = now.as_ref().or(before.as_ref());
            let (supplier, customer) = cell
                .map(|c| (c.supplier.clone(), c.customer.clone()))
                .unwrap_or_default();
            vec![
                supplier,
                customer,
                now.as_ref().map_or(0, |c| c.handoffs).to_string(),
                now.as_ref().map_or(0, |c| c.met).to_string(),
                now.as_ref().map_or(0, |c| c.breached).to_string(),
                kept(now.as_ref()),
                kept(before.as_ref()),
            ]
        })
        .collect();
    Table {
        title: format!("Every pair, {}", summary.order.describe()),
        columns: vec![
            "supplier",
            "customer",
            "handoffs",
            "met",
            "breached",
            "kept",
            "kept the month before",
        ],
        rows,
    }
}

fn tables(report: &Report) -> Vec<Table> {
    let mut tables = Vec::new();
    for side in &report.sides {
        tables.push(pairs(side));
        tables.push(promises(side));
        tables.push(worst(side));
        tables.push(trend(side));
    }
    tables.push(disruptions(report));
    tables
}

fn counterpart(side: &Side) -> &'static str {
    side.role.counterpart()
}

fn pairs(side: &Side) -> Table {
    let rows = side
        .pairs
        .iter()
        .map(|c| {
            let other = match side.role {
                Role::Supplier => &c.customer,
                Role::Customer => &c.supplier,
            };
            let rating = match c.ratings {
                0 => "-".to_owned(),
                n => format!("{:.1} ({n})", c.rating),
            };
            vec![
                other.clone(),
                c.handoffs.to_string(),
                c.met.to_string(),
                c.breached.to_string(),
                c.open.to_string(),
                share_kept(c.compliance, c.met + c.breached),
                c.rejected.to_string(),
                c.disrupted.to_string(),
                c.late_entry_corrections.to_string(),
                rating,
            ]
        })
        .collect();
    Table {
        title: format!("As {}: per {}", side.role.name(), counterpart(side)),
        columns: vec![
            counterpart(side),
            "handoffs",
            "met",
            "breached",
            "open",
            "kept",
            "rejected",
            "disrupted",
            "late entries",
            "rating",
        ],
        rows,
    }
}

fn promises(side: &Side) -> Table {
    let rows = side
        .promises
        .iter()
        .map(|p| {
            let c = &p.figures;
            vec![
                p.policy_id.clone(),
                p.targets.clone(),
                c.met.to_string(),
                c.breached.to_string(),
                c.open.to_string(),
                share_kept(c.compliance, c.met + c.breached),
                format_duration(&c.p50),
                format_duration(&c.p90),
                c.rejected.to_string(),
                c.warned.to_string(),
            ]
        })
        .collect();
    Table {
        title: format!("As {}: per promise", side.role.name()),
        columns: vec![
            "promise", "targets", "met", "breached", "open", "kept", "p50", "p90", "rejected",
            "warned",
        ],
        rows,
    }
}

fn worst(side: &Side) -> Table {
    let rows = side
        .worst
        .iter()
        .map(|b: &v1::Breach| {
            vec![
                b.handoff_id.clone(),
                b.policy_id.clone(),
                b.supplier.clone(),
                b.customer.clone(),
                priority(b.priority),
                format_time(&b.deadline),
                format_duration(&b.overrun),
                if b.open { "open" } else { "closed" }.to_owned(),
            ]
        })
        .collect();
    Table {
        title: format!("As {}: the worst breaches", side.role.name()),
        columns: vec![
            "handoff", "promise", "supplier", "customer", "priority", "deadline", "late by", "now",
        ],
        rows,
    }
}

fn trend(side: &Side) -> Table {
    let rows = side
        .trend
        .iter()
        .map(|t| {
            vec![
                t.month.clone(),
                t.met.to_string(),
                t.breached.to_string(),
                t.kept(),
                t.ratings.to_string(),
                t.rating(),
            ]
        })
        .collect();
    Table {
        title: format!("As {}: the months before", side.role.name()),
        columns: vec!["month", "met", "breached", "kept", "ratings", "rating"],
        rows,
    }
}

fn disruptions(report: &Report) -> Table {
    let rows = report
        .disruptions
        .iter()
        .map(|d| {
            vec![
                d.disruption_id.clone(),
                d.reason.clone(),
                format_time(&d.started_at),
                format_time(&d.ended_at),
                d.affected.to_string(),
                d.failed_before_announcement.to_string(),
            ]
        })
        .collect();
    Table {
        title: "As supplier: disruptions".to_owned(),
        columns: vec![
            "disruption",
            "reason",
            "started",
            "ended",
            "hand-offs affected",
            "broken before it was announced",
        ],
        rows,
    }
}

/// Aligned columns, a table after another.
pub fn text(page: &Page) -> String {
    let mut out = format!("{}\n", page.heading);
    for table in &page.tables {
        let _ = writeln!(out, "\n{}", table.title);
        if table.rows.is_empty() {
            out.push_str("  (none)\n");
            continue;
        }
        let mut widths: Vec<usize> = table.columns.iter().map(|c| c.len()).collect();
        for row in &table.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {}\n", padded.join("  ").trim_end())
        };
        out.push_str(&line(table.columns.clone()));
        for row in &table.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
    }
    out
}

/// One CSV table with a `table` column naming which of the report's tables
/// a row belongs to, and the department and month on every row, so rows
/// from several months and departments can go into one sheet.
pub fn csv(page: &Page) -> String {
    let mut out = String::new();
    for table in &page.tables {
        let _ = writeln!(
            out,
            "{}",
            csv_row(
                ["table", "department", "month"]
                    .into_iter()
                    .chain(table.columns.iter().copied())
            )
        );
        for row in &table.rows {
            let fixed = [
                table.title.as_str(),
                page.department.as_str(),
                page.month.as_str(),
            ];
            let _ = writeln!(
                out,
                "{}",
                csv_row(fixed.into_iter().chain(row.iter().map(String::as_str)))
            );
        }
    }
    out
}

fn csv_row<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells
        .map(|c| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One page, A4 when printed.
pub fn html(page: &Page) -> String {
    html_with_links(page, &[])
}

/// One page, A4 when printed, with a row of links above it (`(text, href)`,
/// hrefs already URL-safe) that the printed page leaves out.
pub fn html_with_links(page: &Page, links: &[(String, String)]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head>\n<body>",
        title = escape(&page.heading)
    );
    if !links.is_empty() {
        out.push_str("<nav>");
        for (text, href) in links {
            let _ = write!(out, "<a href=\"{}\">{}</a> ", escape(href), escape(text));
        }
        out.push_str("</nav>");
    }
    let _ = writeln!(out, "<main><h1>{}</h1>", escape(&page.heading));
    for (i, table) in page.tables.iter().enumerate() {
        let _ = writeln!(
            out,
            "<section id=\"table-{i}\"><h2>{}</h2>",
            escape(&table.title)
        );
        if table.rows.is_empty() {
            out.push_str("<p class=\"none\">None.</p></section>\n");
            continue;
        }
        out.push_str("<table><thead><tr>");
        for c in &table.columns {
            let _ = write!(out, "<th>{}</th>", escape(c));
        }
        out.push_str("</tr></thead><tbody>\n");
        for row in &table.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table></section>\n");
    }
    out.push_str("</main></body></html>\n");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}\
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}\
th,td{border-bottom:1px solid #ccc;padding:.25em .5em;text-align:left}\
th{background:#eee}.none{color:#666}\
nav{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1em}\
@media print{@page{size:A4;margin:15mm}body{margin:0;font-size:10pt}nav{display:none}\
h2{break-after:avoid}tr{break-inside:avoid}}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A share of decided clocks kept, as a percentage; `-` when none was
/// decided, never 100% for nothing.
pub fn share_kept(compliance: f64, decided: u64) -> String {
    if decided == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", compliance * 100.0)
    }
}

/// `PRIORITY_STAT` -> `stat`.
pub use baton_proto::convert::priority_word as priority;

/// An instant as RFC 3339 to the second; `-` when absent.
pub fn format_time(t: &Option<prost_types::Timestamp>) -> String {
    match t {
        Some(t) => jiff::Timestamp::new(t.seconds, t.nanos)
            .and_then(|t| t.round(jiff::Unit::Second))
            .map(|t| t.to_string())
            .unwrap_or_else(|_| "(invalid)".into()),
        None => "-".into(),
    }
}

/// A duration as `1h05m`, or in ms under a second; `-` when absent.
pub fn format_duration(d: &Option<prost_types::Duration>) -> String {
    match d {
        Some(d) if d.seconds > 0 => {
            baton_domain::time::format_duration(std::time::Duration::from_secs(d.seconds as u64))
        }
        Some(d) => format!("{}ms", d.nanos / 1_000_000),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(
            csv_row(["a", "b,c", "say \"hi\""].into_iter()),
            "a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }

    #[test]
    fn nothing_decided_is_no_figure() {
        assert_eq!(share_kept(1.0, 0), "-");
        assert_eq!(share_kept(1.0, 3), "100.0%");
        assert_eq!(share_kept(0.974, 38), "97.4%");
    }

    #[test]
    fn html_escapes_text() {
        assert_eq!(escape("<b>&\"</b>"), "&lt;b&gt;&amp;&quot;&lt;/b&gt;");
    }
}
