//! RFC 3339 timestamps and human durations on the command line.

use anyhow::{anyhow, Context};

/// Instants and durations are written as the report card writes them.
pub use baton_report::render::{format_duration, format_time as format};

pub fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// `now`, `now-5m`, or an RFC 3339 timestamp.
pub fn parse(input: &str) -> anyhow::Result<prost_types::Timestamp> {
    let millis = if input == "now" {
        now_millis()
    } else if let Some(ago) = input.strip_prefix("now-") {
        let d = baton_domain::time::parse_duration(ago)?;
        now_millis() - d.as_millis() as i64
    } else {
        let t: jiff::Timestamp = input
            .parse()
            .with_context(|| format!("{input:?} is not an RFC 3339 timestamp (e.g. 2026-11-23T08:30:00Z), 'now' or 'now-10m'"))?;
        t.as_millisecond()
    };
    Ok(from_millis(millis))
}

pub fn from_millis(millis: i64) -> prost_types::Timestamp {
    baton_proto::convert::timestamp_to_proto(baton_domain::Timestamp(millis))
}

pub fn parse_optional(input: &Option<String>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    input
        .as_deref()
        .map(parse)
        .transpose()
        .map_err(|e| anyhow!(e))
}

/// A signed span of milliseconds, short: `-3m12s`, `1h05m`, `42s`.
pub fn format_millis_span(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.unsigned_abs() / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m{s:02}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod span_tests {
    #[test]
    fn spans_are_short_and_signed() {
        assert_eq!(super::format_millis_span(42_000), "42s");
        assert_eq!(super::format_millis_span(-192_000), "-3m12s");
        assert_eq!(super::format_millis_span(3_900_000), "1h05m");
    }
}
