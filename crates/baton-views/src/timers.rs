//! The timer's index: when each hand-off's running clocks next fall due.
//!
//! One entry per hand-off with a running clock: the earliest of its
//! deadlines and warnings, ordered by that instant. Passing it is what makes
//! [`Projection::advance`](crate::Projection::advance) look at the hand-off
//! again. Beside it, the same hand-offs by their earliest running deadline,
//! which the lists of running clocks walk.
//!
//! The index lives in memory only. Kept in sled, it cost two tree writes for
//! every clock (one when it started, one when it stopped), 44% of all the
//! writes of live traffic. It is derived from the hand-off views, which list
//! their running deadlines and warnings: read off the stored views when the
//! store opens, changed by each batch as the batch is staged, and read off
//! the tree anew after a batch fails to land. It must never hold anything
//! the views do not say.

use std::{collections::BTreeSet, ops::Bound};

use baton_domain::{Timestamp, Token};

use crate::view::RunningClock;
use foldhash::HashMap;

/// The earliest instant among a hand-off's running deadlines and warnings.
pub(crate) fn next_due(
    deadlines: &[RunningClock],
    warnings: &[(Token, Timestamp)],
) -> Option<Timestamp> {
    let deadlines = deadlines.iter().map(|c| c.deadline);
    deadlines.chain(warnings.iter().map(|(_, at)| *at)).min()
}

/// The earliest of a hand-off's running deadlines.
pub(crate) fn earliest_deadline(deadlines: &[RunningClock]) -> Option<Timestamp> {
    deadlines.iter().map(|c| c.deadline).min()
}

/// Hand-offs by the instant their clocks next fall due, and by their
/// earliest running deadline (what the lists of running clocks walk: a
/// warning falls due before its deadline, so the first index would make a
/// list read every hand-off warned before the rows it shows).
///
/// Every entry names its hand-off; `(at, None)` sorts before every entry
/// at `at`, so it bounds a range of the index by time alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Timers {
    due: BTreeSet<(Timestamp, Option<Token>)>,
    deadlines: BTreeSet<(Timestamp, Option<Token>)>,
}

impl Timers {
    /// Records that `handoff` next falls due at `at`.
    pub(crate) fn insert(&mut self, at: Timestamp, handoff: Token) {
        self.due.insert((at, Some(handoff)));
    }

    /// Records that `handoff`'s earliest running deadline is `at`.
    pub(crate) fn insert_deadline(&mut self, at: Timestamp, handoff: Token) {
        self.deadlines.insert((at, Some(handoff)));
    }

    fn entries<'a>(
        range: impl Iterator<Item = &'a (Timestamp, Option<Token>)>,
    ) -> impl Iterator<Item = (Timestamp, &'a Token)> {
        range.filter_map(|(at, handoff)| handoff.as_ref().map(|h| (*at, h)))
    }

    /// The earliest instant anything falls due.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        Self::entries(self.due.iter()).next().map(|(at, _)| at)
    }

    /// Up to `n` hand-offs by earliest running deadline after `after`
    /// (from the first if `None`): the index read a piece at a time.
    pub(crate) fn by_deadline_after(
        &self,
        after: Option<&(Timestamp, Token)>,
        n: usize,
    ) -> Vec<(Timestamp, Token)> {
        let start = match after {
            Some((at, handoff)) => Bound::Excluded((*at, Some(handoff.clone()))),
            None => Bound::Unbounded,
        };
        Self::entries(self.deadlines.range((start, Bound::Unbounded)))
            .take(n)
            .map(|(at, handoff)| (at, handoff.clone()))
            .collect()
    }

    /// Entries due in `[from, before)`, earliest first.
    fn due_in(
        &self,
        from: Timestamp,
        before: Timestamp,
    ) -> impl Iterator<Item = (Timestamp, &Token)> {
        Self::entries(self.due.range((from, None)..(before, None)))
    }

    /// Applies a batch's changes.
    pub(crate) fn apply(&mut self, changes: &TimerChanges) {
        move_entries(&mut self.deadlines, &changes.deadlines);
        move_entries(&mut self.due, &changes.by_handoff);
    }

    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }
}

/// Moves each changed hand-off's entry of `index` from its instant before
/// to its instant after.
fn move_entries(
    index: &mut BTreeSet<(Timestamp, Option<Token>)>,
    changes: &HashMap<Token, Change>,
) {
    for (handoff, change) in changes {
        if change.before == change.after {
            continue;
        }
        if let Some(before) = change.before {
            index.remove(&(before, Some(handoff.clone())));
        }
        if let Some(after) = change.after {
            index.insert((after, Some(handoff.clone())));
        }
    }
}

/// Records in `changes` that `handoff` moved from `before` (as the batch
/// found it: kept from the first change) to `after`; false if nothing
/// moved.
fn record(
    changes: &mut HashMap<Token, Change>,
    handoff: &Token,
    before: Option<Timestamp>,
    after: Option<Timestamp>,
) -> bool {
    if before == after && !changes.contains_key(handoff) {
        return false;
    }
    changes
        .entry(handoff.clone())
        .or_insert(Change { before, after })
        .after = after;
    true
}

#[derive(Debug, Clone, Copy)]
struct Change {
    /// In the index the batch started from.
    before: Option<Timestamp>,
    /// As the batch leaves it.
    after: Option<Timestamp>,
}

/// One batch's changes to the index, read through by the batch itself.
#[derive(Debug, Default)]
pub(crate) struct TimerChanges {
    by_handoff: HashMap<Token, Change>,
    /// Earliest running deadlines changed by the batch (not read through:
    /// only the lists read them, from the index as staged).
    deadlines: HashMap<Token, Change>,
    /// No entry changed by this batch falls due before this (a lower
    /// bound: `None` when none falls due at all).
    floor: Option<Timestamp>,
    /// The index below this instant has been looked through already: its
    /// entries there were either settled (and so changed here) or dropped.
    scanned_to: Option<Timestamp>,
}

impl TimerChanges {
    /// `handoff`, which fell due at `before` as the batch found it, now
    /// falls due at `after`.
    pub(crate) fn set(
        &mut self,
        handoff: &Token,
        before: Option<Timestamp>,
        after: Option<Timestamp>,
    ) {
        if !record(&mut self.by_handoff, handoff, before, after) {
            return;
        }
        if let Some(after) = after {
            self.floor = Some(self.floor.map_or(after, |f| f.min(after)));
        }
    }

    /// `handoff`'s earliest running deadline, `before` as the batch found
    /// it, is now `after`.
    pub(crate) fn set_deadline(
        &mut self,
        handoff: &Token,
        before: Option<Timestamp>,
        after: Option<Timestamp>,
    ) {
        record(&mut self.deadlines, handoff, before, after);
    }

    /// Hand-offs due before `now`, in `index` as this batch has changed it,
    /// each once: the caller settles them all (each then changes here), so
    /// the index below `now` is not looked through again.
    pub(crate) fn due_before(&mut self, index: &Timers, now: Timestamp) -> Vec<(Timestamp, Token)> {
        let from = self.scanned_to.unwrap_or(Timestamp(i64::MIN));
        let mut due: Vec<(Timestamp, Token)> = Vec::new();
        if from < now {
            due.extend(
                index
                    .due_in(from, now)
                    .filter(|(_, handoff)| !self.by_handoff.contains_key(*handoff))
                    .map(|(at, handoff)| (at, handoff.clone())),
            );
            self.scanned_to = Some(now);
        }
        if self.floor.is_some_and(|floor| floor < now) {
            due.extend(self.by_handoff.iter().filter_map(|(handoff, change)| {
                change
                    .after
                    .filter(|at| *at < now)
                    .map(|at| (at, handoff.clone()))
            }));
        }
        due.sort();
        due
    }

    /// Every entry due was settled: the floor is found anew.
    pub(crate) fn settled(&mut self) {
        self.floor = self.by_handoff.values().filter_map(|c| c.after).min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    fn index(entries: &[(i64, &str)]) -> Timers {
        let mut timers = Timers::default();
        for (at, handoff) in entries {
            timers.insert(Timestamp(*at), t(handoff));
        }
        timers
    }

    fn ids(due: &[(Timestamp, Token)]) -> Vec<&str> {
        due.iter().map(|(_, h)| h.as_str()).collect()
    }

    #[test]
    fn the_next_due_is_the_earliest_deadline_or_warning() {
        let running = |policy: &str, deadline: i64| RunningClock {
            policy_id: t(policy),
            cycle: 1,
            deadline: Timestamp(deadline),
            target: std::time::Duration::from_millis(30),
            started_at: Some(Timestamp(0)),
            warn_at: None,
            warned: false,
        };
        let deadlines = [running("ack", 30), running("done", 90)];
        let warnings = [(t("ack"), Timestamp(20))];
        assert_eq!(next_due(&deadlines, &warnings), Some(Timestamp(20)));
        assert_eq!(next_due(&deadlines, &[]), Some(Timestamp(30)));
        assert_eq!(next_due(&[], &[]), None);
    }

    #[test]
    fn a_batch_reads_its_own_changes_over_the_index() {
        let index = index(&[(10, "h-1"), (20, "h-2"), (30, "h-3")]);
        let mut changes = TimerChanges::default();
        // h-1 stopped, h-2 moved later, h-4 started early.
        changes.set(&t("h-1"), Some(Timestamp(10)), None);
        changes.set(&t("h-2"), Some(Timestamp(20)), Some(Timestamp(50)));
        changes.set(&t("h-4"), None, Some(Timestamp(5)));

        assert_eq!(ids(&changes.due_before(&index, Timestamp(25))), ["h-4"]);
        // h-4 settled: its clock stopped.
        changes.set(&t("h-4"), Some(Timestamp(5)), None);
        changes.settled();
        assert!(changes.due_before(&index, Timestamp(25)).is_empty());
        assert_eq!(ids(&changes.due_before(&index, Timestamp(40))), ["h-3"]);
        assert_eq!(
            ids(&changes.due_before(&index, Timestamp(60))),
            ["h-2"],
            "h-3 was handed out once already, h-2 is due at its new instant"
        );
    }

    #[test]
    fn applying_a_batch_leaves_the_index_it_read() {
        let mut applied = index(&[(10, "h-1"), (20, "h-2"), (30, "h-3")]);
        let mut changes = TimerChanges::default();
        changes.set(&t("h-1"), Some(Timestamp(10)), None);
        changes.set(&t("h-2"), Some(Timestamp(20)), Some(Timestamp(50)));
        changes.set(&t("h-2"), Some(Timestamp(50)), Some(Timestamp(60)));
        changes.set(&t("h-4"), None, Some(Timestamp(5)));
        changes.set(&t("h-5"), None, Some(Timestamp(7)));
        changes.set(&t("h-5"), Some(Timestamp(7)), None);
        applied.apply(&changes);
        assert_eq!(applied, index(&[(5, "h-4"), (30, "h-3"), (60, "h-2")]));
        assert_eq!(applied.next(), Some(Timestamp(5)));
    }

    #[test]
    fn hand_offs_are_read_by_earliest_deadline_a_piece_at_a_time() {
        let mut index = Timers::default();
        for (due, deadline, handoff) in [
            (25, 30, "h-3"),
            (5, 10, "h-1"),
            (1, 20, "h-2"),
            (20, 20, "h-0"),
        ] {
            index.insert(Timestamp(due), t(handoff));
            index.insert_deadline(Timestamp(deadline), t(handoff));
        }
        let first = index.by_deadline_after(None, 2);
        assert_eq!(
            ids(&first),
            ["h-1", "h-0"],
            "by deadline, not by when they fall due"
        );
        let rest = index.by_deadline_after(first.last(), 5);
        assert_eq!(ids(&rest), ["h-2", "h-3"]);
        assert!(index.by_deadline_after(rest.last(), 5).is_empty());

        let mut changes = TimerChanges::default();
        changes.set_deadline(&t("h-3"), Some(Timestamp(30)), Some(Timestamp(2)));
        changes.set_deadline(&t("h-1"), Some(Timestamp(10)), None);
        index.apply(&changes);
        assert_eq!(
            ids(&index.by_deadline_after(None, 5)),
            ["h-3", "h-0", "h-2"]
        );
    }

    #[test]
    fn a_hand_off_due_in_the_index_and_the_batch_is_handed_out_once() {
        let index = index(&[(10, "h-1")]);
        let mut changes = TimerChanges::default();
        changes.set(&t("h-1"), Some(Timestamp(10)), Some(Timestamp(10)));
        changes.set(&t("h-2"), None, None);
        assert_eq!(ids(&changes.due_before(&index, Timestamp(20))), ["h-1"]);
    }
}
