//! A route's delivery policy: grouping and quiet hours. Pure: the time is
//! an argument (notify's wall clock, since quiet hours are about when
//! people are paged, not about when the work happened).
//!
//! - `group` (`"5m"`): what the route takes is collected and delivered as
//!   one message per interval, with the count and the list, so a warning
//!   storm after an analyzer fails is one message, not two hundred.
//! - `quiet` (`{"from": "22:00", "until": "07:00", "time_zone": ...}`):
//!   what the route takes in those hours is held and delivered as one
//!   message when they end.
//!
//! STAT work is never grouped or delayed: a STAT breach, escalation or
//! warning goes out the moment it is announced, whatever the route says.

use std::time::Duration;

use jiff::{civil::Time, tz::TimeZone, Timestamp};

use crate::notice::Notice;

/// When a route delivers what it takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Collect for this long, then deliver one message.
    pub group: Option<Duration>,
    /// Hours in which nothing but STAT work is delivered.
    pub quiet: Option<Quiet>,
}

/// Daily hours, in a time zone; `from` after `until` spans midnight.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiet {
    pub from: Time,
    pub until: Time,
    pub time_zone: TimeZone,
}

/// Whether `notice` is STAT work, which no policy holds back.
pub fn is_stat(notice: &Notice) -> bool {
    notice.priority == "stat"
}

impl Quiet {
    /// Whether `at` falls in the quiet hours.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.time_zone.clone()).time();
        if self.from <= self.until {
            self.from <= local && local < self.until
        } else {
            local >= self.from || local < self.until
        }
    }

    /// The first end of quiet hours after `at`.
    pub fn end_after(&self, at: Timestamp) -> Timestamp {
        let zoned = at.to_zoned(self.time_zone.clone());
        let mut date = zoned.date();
        // Two days cover every case: today's end, or tomorrow's.
        for _ in 0..3 {
            if let Ok(end) = date
                .to_datetime(self.until)
                .to_zoned(self.time_zone.clone())
            {
                if end.timestamp() > at {
                    return end.timestamp();
                }
            }
            date = date.tomorrow().unwrap_or(date);
        }
        at
    }
}

impl Policy {
    /// When a notice taken at `now` is to be delivered: `None` at once,
    /// `Some(t)` in the group delivered at `t`, which is never in quiet
    /// hours.
    pub fn hold_until(&self, notice: &Notice, now: Timestamp) -> Option<Timestamp> {
        if is_stat(notice) || (self.group.is_none() && self.quiet.is_none()) {
            return None;
        }
        let mut at = match self.group {
            Some(every) => now
                .checked_add(jiff::SignedDuration::try_from(every).unwrap_or_default())
                .unwrap_or(now),
            None => now,
        };
        if let Some(quiet) = &self.quiet {
            if quiet.contains(at) {
                at = quiet.end_after(at);
            }
        }
        (at > now).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::Kind;
    use proptest::prelude::*;

    fn notice(kind: Kind, priority: &str) -> Notice {
        Notice {
            kind,
            subject: "baton.sla.x".into(),
            sequence: 1,
            policy: "lab-turnaround".into(),
            supplier: "lab".into(),
            customer: "ward-5".into(),
            priority: priority.into(),
            handoff: "order-1".into(),
            target: None,
            body: serde_json::Value::Null,
        }
    }

    fn night() -> Quiet {
        Quiet {
            from: Time::constant(22, 0, 0, 0),
            until: Time::constant(7, 0, 0, 0),
            time_zone: TimeZone::get("Europe/Amsterdam").expect("tzdb"),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn quiet_hours_span_midnight_in_their_time_zone() {
        let q = night();
        // 21:30 UTC is 22:30 in Amsterdam in winter.
        assert!(q.contains(at("2026-12-06T21:30:00Z")));
        assert!(q.contains(at("2026-12-07T05:59:59Z")));
        assert!(!q.contains(at("2026-12-07T06:00:00Z")));
        assert!(!q.contains(at("2026-12-06T20:59:59Z")));
        assert_eq!(
            q.end_after(at("2026-12-06T21:30:00Z")),
            at("2026-12-07T06:00:00Z")
        );
        // In summer, 07:00 in Amsterdam is 05:00 UTC.
        assert_eq!(
            q.end_after(at("2026-07-01T01:00:00Z")),
            at("2026-07-01T05:00:00Z")
        );
    }

    #[test]
    fn a_route_groups_and_holds_all_but_stat_work() {
        let grouped = Policy {
            group: Some(Duration::from_secs(300)),
            quiet: Some(night()),
        };
        let day = at("2026-12-07T10:00:00Z");
        let warning = notice(Kind::Warning, "routine");
        assert_eq!(
            grouped.hold_until(&warning, day),
            Some(at("2026-12-07T10:05:00Z"))
        );
        // Five minutes before quiet hours: held until they end.
        assert_eq!(
            grouped.hold_until(&warning, at("2026-12-06T20:58:00Z")),
            Some(at("2026-12-07T06:00:00Z"))
        );
        for kind in [Kind::Breach, Kind::Escalation, Kind::Warning] {
            assert_eq!(grouped.hold_until(&notice(kind, "stat"), day), None);
        }
        assert_eq!(Policy::default().hold_until(&warning, day), None);
        let quiet_only = Policy {
            group: None,
            quiet: Some(night()),
        };
        assert_eq!(quiet_only.hold_until(&warning, day), None);
        assert_eq!(
            quiet_only.hold_until(&warning, at("2026-12-07T02:00:00Z")),
            Some(at("2026-12-07T06:00:00Z"))
        );
    }

    proptest! {
        /// Whatever the hours and the moment: STAT is never held; anything
        /// held is delivered after at least the group's interval, never in
        /// quiet hours, and within a day and the interval.
        #[test]
        fn held_work_is_delivered_outside_quiet_hours(
            seconds in 1_700_000_000i64..1_900_000_000,
            from in 0i8..24, until in 0i8..24,
            group in proptest::option::of(1u64..7_200),
            stat in any::<bool>(),
        ) {
            prop_assume!(from != until);
            let quiet = Quiet {
                from: Time::constant(from, 0, 0, 0),
                until: Time::constant(until, 0, 0, 0),
                time_zone: TimeZone::get("Europe/Amsterdam").expect("tzdb"),
            };
            let policy = Policy { group: group.map(Duration::from_secs), quiet: Some(quiet.clone()) };
            let now = Timestamp::from_second(seconds).expect("in range");
            let n = notice(Kind::Breach, if stat { "stat" } else { "urgent" });
            match policy.hold_until(&n, now) {
                None => prop_assert!(stat || (group.is_none() && !quiet.contains(now))),
                Some(t) => {
                    prop_assert!(!stat);
                    prop_assert!(!quiet.contains(t), "{t} is in quiet hours");
                    let waited = t.duration_since(now).as_secs();
                    prop_assert!(waited as u64 >= group.unwrap_or(0));
                    prop_assert!(waited as u64 <= group.unwrap_or(0) + 25 * 3_600);
                }
            }
        }
    }
}
