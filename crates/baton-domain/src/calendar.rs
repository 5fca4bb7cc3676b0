//! Calendars: when a promise's clock may run.
//!
//! `always` runs around the clock. A working-hours calendar runs only inside
//! its weekly schedule, in its named time zone, and never on its holidays, so
//! a routine consult promised "within 8 working hours" does not burn through
//! the night. Local times are resolved with the IANA time-zone database
//! (jiff, bundled), so DST changes move the working hours with the wall
//! clock: a 08:00-17:00 day is 9 hours of real time on both sides of a change.
//!
//! Pure: the database is compiled in, nothing is read at run time.

use std::{collections::BTreeSet, time::Duration};

use jiff::{civil, tz::TimeZone};

use crate::time::Timestamp;

/// A calendar can look this far ahead for working time before giving up
/// (a schedule that is all holidays).
const MAX_DAYS: i32 = 3_700;

/// Minutes since local midnight, `[start, end)`.
pub type Interval = (u16, u16);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Calendar {
    #[default]
    Always,
    Working(WorkingHours),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    pub time_zone: TimeZone,
    /// Monday first.
    pub week: [Vec<Interval>; 7],
    pub holidays: BTreeSet<civil::Date>,
}

fn to_jiff(at: Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(at.0).unwrap_or(if at.0 < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    Timestamp(t.as_millisecond())
}

impl WorkingHours {
    /// The working spans of one local date, as instants, in order.
    fn spans(&self, date: civil::Date) -> Vec<(Timestamp, Timestamp)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let day = date.weekday().to_monday_zero_offset() as usize;
        self.week[day]
            .iter()
            .filter_map(|(start, end)| {
                let at = |minutes: u16| -> Option<Timestamp> {
                    let (h, m) = ((minutes / 60) as i8, (minutes % 60) as i8);
                    let local = if h == 24 {
                        date.tomorrow().ok()?.at(0, 0, 0, 0)
                    } else {
                        date.at(h, m, 0, 0)
                    };
                    local
                        .to_zoned(self.time_zone.clone())
                        .ok()
                        .map(|z| from_jiff(z.timestamp()))
                };
                Some((at(*start)?, at(*end)?))
            })
            .filter(|(s, e)| s < e)
            .collect()
    }

    fn local_date(&self, at: Timestamp) -> civil::Date {
        to_jiff(at).to_zoned(self.time_zone.clone()).date()
    }
}

impl Calendar {
    /// Working time in `[from, to)`; zero if `to <= from`.
    pub fn working_between(&self, from: Timestamp, to: Timestamp) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        let hours = match self {
            Calendar::Always => return to.since(from),
            Calendar::Working(hours) => hours,
        };
        let mut total: i64 = 0;
        // A local date's spans can start before `from`'s date in UTC terms;
        // starting one day early covers every zone offset.
        let mut date = hours
            .local_date(from)
            .yesterday()
            .unwrap_or(hours.local_date(from));
        let last = hours.local_date(to);
        while date <= last {
            for (s, e) in hours.spans(date) {
                let (s, e) = (s.max(from), e.min(to));
                if s < e {
                    total += e.0 - s.0;
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        Duration::from_millis(total as u64)
    }

    /// The earliest instant by which `amount` of working time has passed
    /// since `from`. `None` if the calendar has no working time for years.
    pub fn add_working(&self, from: Timestamp, amount: Duration) -> Option<Timestamp> {
        let hours = match self {
            Calendar::Always => return Some(from.plus(amount)),
            Calendar::Working(hours) => hours,
        };
        let mut left = crate::time::duration_millis(amount);
        let mut date = hours
            .local_date(from)
            .yesterday()
            .unwrap_or(hours.local_date(from));
        for _ in 0..MAX_DAYS {
            for (s, e) in hours.spans(date) {
                let s = s.max(from);
                if s >= e {
                    continue;
                }
                if left <= e.0 - s.0 {
                    return Some(Timestamp(s.0 + left));
                }
                left -= e.0 - s.0;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    /// Mon-Fri 08:00-17:00 in Amsterdam, with Christmas 2026 off.
    fn office() -> Calendar {
        let day = vec![(8 * 60, 17 * 60)];
        Calendar::Working(WorkingHours {
            time_zone: TimeZone::get("Europe/Amsterdam").expect("tzdb"),
            week: [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![],
                vec![],
            ],
            holidays: [civil::date(2026, 12, 25)].into(),
        })
    }

    fn at(s: &str) -> Timestamp {
        from_jiff(s.parse::<jiff::Timestamp>().expect("timestamp"))
    }

    #[test]
    fn a_working_day_counts_nine_hours_and_nights_count_nothing() {
        let c = office();
        // Monday 2026-11-23, CET (UTC+1): 07:00Z-16:00Z is 08:00-17:00 local.
        assert_eq!(
            c.working_between(at("2026-11-23T00:00:00Z"), at("2026-11-24T00:00:00Z")),
            Duration::from_secs(9 * 3600)
        );
        assert_eq!(
            c.working_between(at("2026-11-23T17:00:00Z"), at("2026-11-24T06:00:00Z")),
            Duration::ZERO
        );
        // Friday 16:00 local + 2 working hours = Monday 09:00 local.
        assert_eq!(
            c.add_working(at("2026-11-27T15:00:00Z"), Duration::from_secs(7200)),
            Some(at("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn holidays_are_skipped() {
        let c = office();
        // Thursday 24 Dec 16:00 local + 2 h: one hour that day, Friday the
        // 25th is a holiday, the weekend is off: Monday 28th 09:00 local.
        assert_eq!(
            c.add_working(at("2026-12-24T15:00:00Z"), Duration::from_secs(7200)),
            Some(at("2026-12-28T08:00:00Z"))
        );
    }

    #[test]
    fn working_hours_follow_the_wall_clock_across_dst() {
        let c = office();
        // Monday 2026-03-30, first day of CEST (UTC+2): 06:00Z-15:00Z.
        assert_eq!(
            c.add_working(at("2026-03-30T00:00:00Z"), Duration::from_secs(60)),
            Some(at("2026-03-30T06:01:00Z"))
        );
        assert_eq!(
            c.working_between(at("2026-03-27T00:00:00Z"), at("2026-03-31T00:00:00Z")),
            Duration::from_secs(18 * 3600)
        );
    }

    #[test]
    fn always_is_plain_arithmetic_and_an_empty_week_never_ends() {
        assert_eq!(
            Calendar::Always.working_between(Timestamp(0), Timestamp(5)),
            Duration::from_millis(5)
        );
        assert_eq!(
            Calendar::Always.add_working(Timestamp(0), Duration::from_millis(5)),
            Some(Timestamp(5))
        );
        let empty = Calendar::Working(WorkingHours {
            time_zone: TimeZone::UTC,
            week: Default::default(),
            holidays: BTreeSet::new(),
        });
        assert_eq!(
            empty.add_working(Timestamp(0), Duration::from_secs(1)),
            None
        );
    }

    /// Minute by minute: is the local minute starting at `t` working time?
    fn reference_minutes(from: Timestamp, to: Timestamp) -> i64 {
        let tz = TimeZone::get("Europe/Amsterdam").expect("tzdb");
        let mut count = 0;
        let mut t = from;
        while t < to {
            let local = to_jiff(t).to_zoned(tz.clone());
            let weekday = local.weekday().to_monday_zero_offset();
            let minute = local.hour() as i64 * 60 + local.minute() as i64;
            if weekday < 5
                && (480..1020).contains(&minute)
                && local.date() != civil::date(2026, 12, 25)
            {
                count += 1;
            }
            t = Timestamp(t.0 + MIN);
        }
        count
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Against a minute-by-minute reference over spans of up to five days
        /// around both 2026 DST changes and Christmas, and add_working as the
        /// inverse of working_between.
        #[test]
        fn agrees_with_a_minute_by_minute_reference(
            anchor in proptest::sample::select(vec!["2026-03-26T00:00:00Z", "2026-10-22T00:00:00Z", "2026-12-22T00:00:00Z"]),
            offset in 0i64..(4 * 1440),
            length in 0i64..(5 * 1440),
            amount in 1i64..(20 * 60),
        ) {
            let c = office();
            let from = Timestamp(at(anchor).0 + offset * MIN);
            let to = Timestamp(from.0 + length * MIN);
            let worked = c.working_between(from, to);
            prop_assert_eq!(worked, Duration::from_secs(reference_minutes(from, to) as u64 * 60));

            let due = c.add_working(from, Duration::from_secs(amount as u64 * 60)).expect("working time");
            prop_assert_eq!(c.working_between(from, due), Duration::from_secs(amount as u64 * 60));
            // Earliest: a minute less is not enough.
            prop_assert!(c.working_between(from, Timestamp(due.0 - MIN)) < Duration::from_secs(amount as u64 * 60));
        }
    }
}
