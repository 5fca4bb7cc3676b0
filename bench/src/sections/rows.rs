//! Rows more than one section adds: what an event cost in CPU, Baton's
//! CPU an event against a limit pipeline's (the limits' CPU an event
//! added up), and the appends a run saw refused.

use crate::{cpu, load, stats::Report};

/// What an event cost in CPU in a limit's run and in Baton's, and their
/// ratio: the most Baton's rate can be of the limit's while both runs keep
/// every core busy.
pub fn report_cpu(
    report: &mut Report,
    cpu: Option<(cpu::CpuPerEvent, cpu::CpuPerEvent)>,
    limit: (&str, &str),
    ours: (&str, &str),
) {
    let Some((limit_cpu, ours_cpu)) = cpu else {
        return;
    };
    for ((section, name), cost) in [(limit, limit_cpu), (ours, ours_cpu)] {
        report_cpu_of(report, section, name, Some(cost));
    }
    report.ratio(
        ours.0,
        &format!("CPU an event, {} / {}", limit.1, ours.1),
        limit_cpu.total_us(),
        ours_cpu.total_us(),
        "the most the ratio above can reach while both runs keep every core busy",
    );
}

/// One run's CPU an event, split between the bench process and nats-server.
pub fn report_cpu_of(
    report: &mut Report,
    section: &str,
    name: &str,
    cost: Option<cpu::CpuPerEvent>,
) {
    if let Some(cost) = cost {
        report.add(
            section,
            &format!("{name}: CPU an event"),
            cost.total_us(),
            "us",
            &format!(
                "bench process {:.1} + nats-server {:.1}; {:.2} cores busy",
                cost.own_us, cost.nats_us, cost.cores_busy
            ),
        );
    }
}

/// A limit pipeline: the limits whose CPU an event, added up, is the
/// least Baton's run could cost, and the target on their ratio.
pub struct LimitPipeline<'a> {
    /// The row naming the sum ("<name>: CPU an event").
    pub name: &'a str,
    /// Each limit's name in the note and its CPU an event.
    pub parts: Vec<(&'a str, Option<cpu::CpuPerEvent>)>,
    /// Baton's run: its CPU an event.
    pub ours: Option<cpu::CpuPerEvent>,
    /// The ratio row's name, ours over the pipeline's.
    pub ratio: &'a str,
    /// The ratio row's note.
    pub target: &'a str,
}

/// The pipeline's CPU an event (the sum of its parts', bench process and
/// nats-server both) and Baton's over it as a multiple; nothing if any of
/// them went unmeasured.
pub fn report_limit_pipeline(report: &mut Report, pipeline: &LimitPipeline<'_>) {
    let parts: Option<Vec<(&str, f64)>> = pipeline
        .parts
        .iter()
        .map(|(name, cost)| cost.map(|c| (*name, c.total_us())))
        .collect();
    let (Some(parts), Some(ours)) = (parts, pipeline.ours) else {
        return;
    };
    let limit: f64 = parts.iter().map(|(_, us)| us).sum();
    let note = parts
        .iter()
        .map(|(name, us)| format!("{name} {us:.1}"))
        .collect::<Vec<_>>()
        .join(" + ");
    report.add(
        "1",
        &format!("{}: CPU an event", pipeline.name),
        limit,
        "us",
        &note,
    );
    report.times("2", pipeline.ratio, ours.total_us(), limit, pipeline.target);
}

/// A row for the appends a run saw refused, if any (a run with errors is
/// not a measurement of the happy path).
pub fn report_errors(report: &mut Report, name: &str, outcome: &load::Outcome) {
    if outcome.errors > 0 {
        report.add(
            "2",
            name,
            outcome.errors as f64,
            "",
            outcome.first_error.as_deref().unwrap_or(""),
        );
    }
}
