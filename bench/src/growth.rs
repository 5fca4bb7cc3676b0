//! Growth over years (section 9): what the log and the views hold after one
//! and five years of a 1,000-bed hospital's hand-offs, and what a rebuild
//! from an empty data dir then costs. Nothing here is measured afresh: the
//! hospital's day is planned from the bench's traffic model (no I/O), and
//! every growth row is arithmetic on rows the same run measured, each
//! naming them in its note. A growth row whose inputs the run lacks (the
//! scale section skipped) is left out, never filled in.

use crate::{
    stats::{Report, Row},
    traffic::{Rng, Traffic},
};

/// The section the rows are filed under.
const SECTION: &str = "9";
/// The row holding a hospital day's hand-offs (the assumption).
pub const DAY_HANDOFFS: &str = "hospital day: hand-offs";
/// The row holding a hospital day's events.
pub const DAY_EVENTS: &str = "hospital day: events";
/// The rebuild row of section (3) growth rows divide by.
const REBUILD: &str = "rebuild from an empty data dir";
/// Days counted in a year.
const DAYS_A_YEAR: f64 = 365.0;
/// The years the growth rows are given for.
const YEARS: [u32; 2] = [1, 5];
/// Beds of the hospital the day's hand-offs are assumed for.
const BEDS: f64 = 1_000.0;

/// The name of the scale section's row of JetStream bytes an event at `label`.
pub fn jetstream_bytes_row(label: &str) -> String {
    format!("JetStream bytes an event at {label}")
}

/// The scale section's row of sled bytes an event at `size` hand-offs.
fn sled_bytes_row(size: usize) -> String {
    format!("sled disk per event at {size} hand-offs")
}

/// Adds the hospital day's rows: `handoffs` a day (an assumption, the
/// flag's value) and the events they bring, their lifecycles planned with
/// the fates `batonctl simulate` plans a day with.
pub fn add_hospital_day(report: &mut Report, traffic: &Traffic, handoffs: usize) {
    let events = traffic.day_events(&mut Rng::new(23), handoffs);
    report.add(
        SECTION,
        DAY_HANDOFFS,
        handoffs as f64,
        "hand-offs",
        &format!(
            "assumption (--hospital-handoffs-per-day): {:.0} a bed a day at 1,000 beds",
            handoffs as f64 / BEDS
        ),
    );
    report.add(
        SECTION,
        DAY_EVENTS,
        events as f64,
        "events",
        &format!(
            "{DAY_HANDOFFS} x {:.2} events a hand-off: the bench's traffic model \
             (crates/baton-traffic lifecycles, Fates::HOSPITAL_DAY as batonctl simulate \
             plans them; its generator is not a library), seed 23",
            events as f64 / handoffs.max(1) as f64
        ),
    );
}

/// Adds the growth rows computed from `report`'s own rows.
pub fn add(report: &mut Report) {
    for row in rows(report) {
        report.add(&row.section, &row.name, row.value, &row.unit, &row.note);
    }
}

/// The growth rows `report`'s rows give: for each of [`YEARS`], the events
/// in the log, the log's bytes, the views' bytes without retention and the
/// rebuild's time. Bytes an event are taken at the largest scale the run
/// measured both the log's and sled's at. Empty when an input is missing.
pub fn rows(report: &Report) -> Vec<Row> {
    let Some(per_day) = report.value(DAY_EVENTS).filter(|v| *v > 0.0) else {
        return Vec::new();
    };
    let Some(rebuild) = report.value(REBUILD).filter(|v| *v > 0.0) else {
        return Vec::new();
    };
    let Some((size, log_bytes, sled_bytes)) = largest_scale(report) else {
        return Vec::new();
    };
    let log_row = jetstream_bytes_row(&format!("{size} hand-offs"));
    let sled_row = sled_bytes_row(size);
    let gib = |bytes: f64| bytes / 1_073_741_824.0;
    let row = |name: String, value: f64, unit: &str, note: String| Row {
        section: SECTION.to_owned(),
        name,
        value,
        unit: unit.to_owned(),
        note,
    };
    let mut out = Vec::new();
    for years in YEARS {
        let after = if years == 1 {
            "after 1 year".to_owned()
        } else {
            format!("after {years} years")
        };
        let events = per_day * DAYS_A_YEAR * f64::from(years);
        out.push(row(
            format!("events in the log {after}"),
            events,
            "events",
            format!("{DAY_EVENTS} x {DAYS_A_YEAR:.0} x {years}; every event kept"),
        ));
        out.push(row(
            format!("log bytes {after}"),
            gib(events * log_bytes),
            "GiB",
            format!("events in the log {after} x {log_row}"),
        ));
        out.push(row(
            format!("views bytes {after}, without retention"),
            gib(events * sled_bytes),
            "GiB",
            format!("events in the log {after} x {sled_row}"),
        ));
        out.push(row(
            format!("rebuild from an empty data dir {after}"),
            events / rebuild / 3_600.0,
            "h",
            format!("events in the log {after} / {REBUILD} (3), as if its rate held"),
        ));
    }
    out
}

/// The largest scale at which `report` has both the JetStream and the
/// sled bytes an event: (hand-offs, JetStream bytes, sled bytes).
fn largest_scale(report: &Report) -> Option<(usize, f64, f64)> {
    report
        .rows
        .iter()
        .filter_map(|r| {
            let size = r
                .name
                .strip_prefix("JetStream bytes an event at ")?
                .strip_suffix(" hand-offs")?
                .parse::<usize>()
                .ok()?;
            let sled = report.value(&sled_bytes_row(size))?;
            (r.value > 0.0 && sled > 0.0).then_some((size, r.value, sled))
        })
        .max_by_key(|(size, _, _)| *size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: &[(&str, f64)]) -> Report {
        let mut report = Report::default();
        for (name, value) in rows {
            report.rows.push(Row {
                section: "x".into(),
                name: (*name).to_owned(),
                value: *value,
                unit: String::new(),
                note: String::new(),
            });
        }
        report
    }

    fn value(rows: &[Row], name: &str) -> f64 {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name} in {rows:?}"))
            .value
    }

    const INPUTS: [(&str, f64); 7] = [
        (DAY_EVENTS, 100_000.0),
        (REBUILD, 36_500.0),
        ("JetStream bytes an event at 10000 hand-offs", 1_000.0),
        ("sled disk per event at 10000 hand-offs", 1_000.0),
        ("JetStream bytes an event at 1000000 hand-offs", 200.0),
        ("sled disk per event at 1000000 hand-offs", 800.0),
        // Larger, but with no sled row beside it: not used.
        ("JetStream bytes an event at 10000000 hand-offs", 1.0),
    ];

    #[test]
    fn growth_is_the_runs_own_rows_multiplied_out() {
        let rows = rows(&report(&INPUTS));
        assert_eq!(rows.len(), 8);
        assert_eq!(value(&rows, "events in the log after 1 year"), 36_500_000.0);
        assert_eq!(
            value(&rows, "events in the log after 5 years"),
            182_500_000.0
        );
        let gib = 1_073_741_824.0;
        assert_eq!(
            value(&rows, "log bytes after 1 year"),
            36_500_000.0 * 200.0 / gib
        );
        assert_eq!(
            value(&rows, "views bytes after 5 years, without retention"),
            182_500_000.0 * 800.0 / gib
        );
        // 36.5 million events at 36,500 a second: 1,000 s.
        assert_eq!(
            value(&rows, "rebuild from an empty data dir after 1 year"),
            1_000.0 / 3_600.0
        );
        let note = |name: &str| {
            rows.iter()
                .find(|r| r.name == name)
                .map(|r| r.note.clone())
                .unwrap_or_default()
        };
        assert!(note("log bytes after 1 year")
            .contains("JetStream bytes an event at 1000000 hand-offs"));
        assert!(note("views bytes after 1 year, without retention")
            .contains("sled disk per event at 1000000 hand-offs"));
        assert!(rows.iter().all(|r| r.section == SECTION));
    }

    #[test]
    fn no_growth_row_without_every_input() {
        for missing in [DAY_EVENTS, REBUILD, "sled disk per event at"] {
            let inputs: Vec<_> = INPUTS
                .iter()
                .copied()
                .filter(|(name, _)| !name.starts_with(missing))
                .collect();
            assert!(rows(&report(&inputs)).is_empty(), "without {missing}");
        }
        assert!(rows(&Report::default()).is_empty());
    }

    #[test]
    fn a_hospital_day_has_more_events_than_hand_offs() {
        let traffic = crate::traffic::tests::shipped();
        let mut report = Report::default();
        add_hospital_day(&mut report, &traffic, 2_000);
        assert_eq!(report.value(DAY_HANDOFFS), Some(2_000.0));
        let events = report.value(DAY_EVENTS).expect("events");
        // Every hand-off is requested; most are answered and closed.
        assert!(
            events > 2.0 * 2_000.0 && events < 12.0 * 2_000.0,
            "{events}"
        );
        // The same seed gives the same day.
        let mut again = Report::default();
        add_hospital_day(&mut again, &traffic, 2_000);
        assert_eq!(again.value(DAY_EVENTS), Some(events));
    }
}
