//! Rows more than one section adds: what an event cost in CPU, and the
//! appends a run saw refused.

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
