//! Event time. Baton never asks the machine what time it is in the domain:
//! callers pass `now` in, so live processing and replay compute the same thing.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

/// An instant, as whole milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

/// Earliest instant Baton accepts: 1970-01-01. Hand-offs do not predate it.
pub const MIN_TIMESTAMP: Timestamp = Timestamp(0);
/// Latest instant Baton accepts: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP: Timestamp = Timestamp(253_402_300_799_999);

impl Timestamp {
    pub fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// `self + duration`, saturating at the representable range.
    pub fn plus(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(duration)))
    }

    /// RFC 3339 in UTC to the millisecond (`2026-12-04T09:30:00.000Z`),
    /// for messages a person reads; the raw milliseconds if out of range.
    pub fn rfc3339(self) -> String {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Err(_) => self.to_string(),
        }
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Why a duration string such as `"30m"` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration: expected a whole number and a unit s, m, h or d, like \"45s\", \"30m\", \"4h\"")]
pub struct DurationParseError {
    pub input: String,
}

/// Reads `"45s"`, `"30m"`, `"4h"`, `"2d"` (also `"1h30m"`): whole numbers with
/// units, summed. Zero is refused: a promise of no time at all is a typo.
pub fn parse_duration(input: &str) -> Result<Duration, DurationParseError> {
    let error = || DurationParseError {
        input: input.to_owned(),
    };
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in input.trim().chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            number = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(digit)))
                    .ok_or_else(error)?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(error()),
        };
        let n = number.take().ok_or_else(error)?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(error)?;
    }
    if number.is_some() || total == 0 {
        return Err(error());
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration the way the catalog spells it (`"1h30m"`, `"45s"`).
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_catalog_durations() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "30",
            "m",
            "30x",
            "-5m",
            "0m",
            "1.5h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn since_never_goes_negative() {
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
        assert_eq!(Timestamp(10).since(Timestamp(5)), Duration::from_millis(5));
    }
}
