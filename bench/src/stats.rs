//! Samples, percentiles and the report (a table on stdout, the same rows as JSON).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn push_micros(&mut self, micros: u64) {
        self.0.push(micros);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q`-quantile (0..=1) in milliseconds, nearest rank; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1000.0
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Section number of the issue: "1", "1b", "2", ...
    pub section: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// What the figure is compared with, or what bounds it.
    pub note: String,
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// When the run started, RFC 3339 in UTC.
    pub date: String,
    /// The arguments it was run with, as typed.
    pub command: String,
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub rows: Vec<Row>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub nats_server: String,
    pub kernel: String,
}

impl Machine {
    pub fn here(nats_server: String) -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Machine {
            cpus,
            cpu_model,
            nats_server,
            kernel,
        }
    }
}

impl Report {
    pub fn add(&mut self, section: &str, name: &str, value: f64, unit: &str, note: &str) {
        let row = Row {
            section: section.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            note: note.into(),
        };
        eprintln!(
            "  [{}] {}: {} {}",
            row.section,
            row.name,
            format_value(row.value),
            row.unit
        );
        self.rows.push(row);
    }

    /// Adds `a / b` as a percentage, if both were measured.
    pub fn ratio(&mut self, section: &str, name: &str, a: f64, b: f64, note: &str) {
        if b > 0.0 {
            self.add(section, name, 100.0 * a / b, "%", note);
        }
    }

    /// Adds `a / b` as a multiple ("x"), if both were measured: for
    /// costs, where the target is how many times the limit's Baton's may be.
    pub fn times(&mut self, section: &str, name: &str, a: f64, b: f64, note: &str) {
        if b > 0.0 {
            self.add(section, name, a / b, "x", note);
        }
    }

    /// The value of the row named `name`, if the run measured it.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name).map(|r| r.value)
    }

    /// One line saying when, where and how the run was made.
    pub fn provenance(&self) -> String {
        let m = &self.machine;
        let took = self
            .value(WHOLE_RUN)
            .map(|s| format!(", {} s", format_value(s)))
            .unwrap_or_default();
        format!(
            "Run of {} on {} vCPUs ({}), Linux {}, {}, release build, `baton-bench {}`{took}.",
            self.date, m.cpus, m.cpu_model, m.kernel, m.nats_server, self.command
        )
    }

    /// The rows as a Markdown table.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| # | figure | value | unit | note |\n|---|---|---:|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r.section,
                r.name,
                format_value(r.value),
                r.unit,
                r.note
            ));
        }
        out
    }
}

/// The last row of every run: how long it took.
pub const WHOLE_RUN: &str = "whole run";

pub fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let whole = v.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if whole < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Events (or requests) per second.
pub fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The median of `runs` (sorted in place), and the runs as the report lists
/// them ("3: 18099, 19242, 24615").
pub fn median(runs: &mut [f64]) -> (f64, String) {
    runs.sort_by(f64::total_cmp);
    let listed = runs
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    let middle = runs.get(runs.len() / 2).copied().unwrap_or(0.0);
    (middle, format!("{}: {listed}", runs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::default();
        for v in 1..=100 {
            s.push_micros(v * 1000);
        }
        assert_eq!(s.quantile_ms(0.5), 50.0);
        assert_eq!(s.quantile_ms(0.99), 99.0);
        assert_eq!(s.quantile_ms(1.0), 100.0);
        assert_eq!(Samples::default().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn values_are_grouped_and_rounded() {
        assert_eq!(format_value(123456.7), "123,457");
        assert_eq!(format_value(12.345), "12.3");
        assert_eq!(format_value(1.234), "1.23");
    }

    #[test]
    fn the_median_is_the_middle_run() {
        let mut runs = [30.0, 10.0, 20.0];
        assert_eq!(median(&mut runs), (20.0, "3: 10, 20, 30".to_owned()));
        assert_eq!(median(&mut []).0, 0.0);
    }
}
