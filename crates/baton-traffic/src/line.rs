//! A line of work: one kind the catalog promises, who can supply it, and
//! the promises it is judged by.

use std::{collections::BTreeSet, time::Duration};

use baton_domain::{Catalog, EventType, Policy, Priority};

use crate::{profile::Profile, Rng};

/// A kind of work the catalog promises, and who can do it.
#[derive(Debug, Clone)]
pub struct Line {
    pub kind: String,
    pub profile: Profile,
    /// Promises covering the kind without attribute matches, in catalog order.
    pub promises: Vec<Policy>,
    /// The suppliers its promises name; when none names one (consults),
    /// the clinical departments, who serve each other.
    pub suppliers: Vec<String>,
    /// The priorities its promises have targets for.
    pub priorities: Vec<Priority>,
}

impl Line {
    /// The line of `kind` in `catalog`, served by `clinical` when no
    /// promise names a supplier; none when no promise covers the kind
    /// without attribute matches, or none has a target.
    pub(crate) fn of(catalog: &Catalog, kind: &str, clinical: &[String]) -> Option<Line> {
        let promises: Vec<Policy> = catalog
            .promises
            .iter()
            .filter(|p| p.kind.as_str() == kind && p.matches.is_empty())
            .cloned()
            .collect();
        if promises.is_empty() {
            return None;
        }
        let mut suppliers: Vec<String> = promises
            .iter()
            .filter_map(|p| p.supplier.as_ref().map(|s| s.as_str().to_owned()))
            .collect();
        suppliers.dedup();
        if suppliers.is_empty() {
            suppliers = clinical.to_vec();
        }
        let priorities: BTreeSet<Priority> = promises
            .iter()
            .flat_map(|p| p.targets.keys().copied())
            .collect();
        if priorities.is_empty() || suppliers.is_empty() {
            return None;
        }
        Some(Line {
            kind: kind.to_owned(),
            profile: Profile::of(kind),
            promises,
            suppliers,
            priorities: priorities.into_iter().collect(),
        })
    }

    /// The target of the first promise that stops on one of `stops` and
    /// has a target for `priority`.
    pub fn target(&self, priority: Priority, stops: &[EventType]) -> Option<Duration> {
        self.promises
            .iter()
            .filter(|p| p.stop.iter().any(|s| stops.contains(s)))
            .find_map(|p| p.target(priority))
    }

    /// The supplier's first answer to a request at `priority`: an
    /// acknowledgement where a promise with a target for it stops on one,
    /// else work started (which stops the rest: a porter's pickup, a
    /// consultant's arrival), so that the answer stops the response clock
    /// it is meant to.
    pub fn answer(&self, priority: Priority) -> EventType {
        match self.target(priority, &[EventType::Acknowledged]) {
            Some(_) => EventType::Acknowledged,
            None => EventType::Started,
        }
    }

    /// Whether any of its promises pauses (the work can be put on hold).
    pub fn pausable(&self) -> bool {
        self.promises.iter().any(|p| !p.pause.is_empty())
    }

    /// Whether a promise names its supplier (a service department, not
    /// clinical departments serving each other).
    pub fn has_named_supplier(&self) -> bool {
        self.promises.iter().any(|p| p.supplier.is_some())
    }

    /// A priority for a request: routine 70%, urgent 22%, STAT 8%, or one
    /// the line has a target for when it has none for that one.
    pub fn pick_priority(&self, rng: &mut Rng) -> Priority {
        let wanted = match rng.unit() {
            x if x < 0.7 => Priority::Routine,
            x if x < 0.92 => Priority::Urgent,
            _ => Priority::Stat,
        };
        if self.priorities.contains(&wanted) {
            wanted
        } else {
            *rng.pick(&self.priorities)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{testing, Hospital};

    /// A porter's pickup is met by the start of the move, a repair call by
    /// its acknowledgement: the answer a line gives stops each response
    /// clock its promises run at that priority.
    #[test]
    fn the_answer_stops_every_response_clock() {
        for catalog in [testing::shipped(), testing::demo()] {
            let hospital = Hospital::of(&catalog).expect("a hospital");
            for line in &hospital.lines {
                for priority in &line.priorities {
                    let answer = line.answer(*priority);
                    let responses = line.promises.iter().filter(|p| {
                        p.target(*priority).is_some()
                            && p.stop
                                .iter()
                                .any(|s| matches!(s, EventType::Acknowledged | EventType::Started))
                    });
                    for promise in responses {
                        assert!(
                            promise.stop.contains(&answer),
                            "{} at {priority:?}: {answer:?} does not stop {}",
                            line.kind,
                            promise.id
                        );
                    }
                }
            }
        }
    }
}
