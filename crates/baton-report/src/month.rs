//! A calendar month in a time zone, as a window of event time.

use baton_domain::Timestamp;
use baton_proto::convert::{timestamp_from_proto, timestamp_to_proto};

use crate::ReportError;

/// A calendar month as a window of event time, `[from, to)` in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    /// `2026-11`.
    pub label: String,
    pub from: i64,
    pub to: i64,
}

impl Month {
    /// `month` (YYYY-MM) in `zone`, and the `before` months preceding it,
    /// oldest first, this one last.
    pub fn with_earlier(month: &str, zone: &str, before: u32) -> Result<Vec<Month>, ReportError> {
        let tz = jiff::tz::TimeZone::get(zone).map_err(|source| ReportError::TimeZone {
            zone: zone.to_owned(),
            source,
        })?;
        let first = jiff::civil::Date::strptime("%Y-%m-%d", format!("{month}-01"))
            .map_err(|_| ReportError::Month(month.to_owned()))?;
        let calendar = |source| ReportError::Calendar {
            month: month.to_owned(),
            source,
        };
        let mut months = Vec::new();
        for back in (0..=before).rev() {
            let start = first
                .checked_sub(jiff::Span::new().months(back))
                .map_err(calendar)?;
            let end = start
                .checked_add(jiff::Span::new().months(1))
                .map_err(calendar)?;
            let millis = |day: jiff::civil::Date| {
                day.to_zoned(tz.clone())
                    .map(|z| z.timestamp().as_millisecond())
                    .map_err(calendar)
            };
            months.push(Month {
                label: start.strftime("%Y-%m").to_string(),
                from: millis(start)?,
                to: millis(end)?,
            });
        }
        Ok(months)
    }

    /// Whether `at` falls in the month.
    pub fn contains(&self, at: &Option<prost_types::Timestamp>) -> bool {
        at.as_ref()
            .and_then(|t| timestamp_from_proto("at", t).ok())
            .is_some_and(|t| (self.from..self.to).contains(&t.0))
    }

    /// The month's first instant and the next month's, as the query API
    /// takes a window.
    pub fn bounds(&self) -> (prost_types::Timestamp, prost_types::Timestamp) {
        (
            timestamp_to_proto(Timestamp(self.from)),
            timestamp_to_proto(Timestamp(self.to)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_calendar_days_in_the_zone() {
        let months = Month::with_earlier("2026-03", "Europe/Amsterdam", 2).expect("months");
        let labels: Vec<&str> = months.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        // 1 March 2026 00:00 in Amsterdam is 28 February 23:00 UTC; the
        // month ends as April starts, after the change to summer time.
        assert_eq!(months[2].from, 1_772_319_600_000);
        assert_eq!(months[2].to, 1_774_994_400_000);
        assert_eq!(months[1].to, months[2].from, "months meet");
        assert!(Month::with_earlier("2026-13", "UTC", 0).is_err());
        assert!(Month::with_earlier("march", "UTC", 0).is_err());
        assert!(Month::with_earlier("2026-03", "Mars/Olympus", 0).is_err());
    }
}
