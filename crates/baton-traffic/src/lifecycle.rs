//! The shape of one hand-off's lifecycle: which events follow its request,
//! in which order. When they happen is the player's business (the
//! simulator times them against the promises' targets, the bench squeezes
//! them into a short span).

use baton_domain::EventType;

use crate::{hospital::Hospital, Request, Rng};

/// How often each turn of events happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fates {
    /// Share of requests never answered: left open, their clocks breach.
    pub unanswered: f64,
    /// Share of requests cancelled before any answer.
    pub cancelled: f64,
    /// Share of consults passed on to another specialty first.
    pub reassigned_consult: f64,
    /// Share of lab requests whose sample is rejected after the answer.
    pub rejected_lab: f64,
    /// Share of work that can be paused that is put on hold and resumed.
    pub held: f64,
    /// Share of completed work that is rated.
    pub rated: f64,
}

impl Fates {
    /// A hospital day: most requests answered, some not, a few cancelled,
    /// held, reassigned or rejected; completed work often rated.
    pub const HOSPITAL_DAY: Fates = Fates {
        unanswered: 0.03,
        cancelled: 0.02,
        reassigned_consult: 0.15,
        rejected_lab: 0.03,
        held: 0.08,
        rated: 0.3,
    };

    /// These fates with every request answered: each hand-off closes.
    pub const fn always_answered(self) -> Fates {
        Fates {
            unanswered: 0.0,
            ..self
        }
    }
}

/// The events of one hand-off, in order, from its request on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub events: Vec<EventType>,
    /// The supplier a REASSIGNED passes it to, when there is one.
    pub reassigned_to: Option<String>,
}

impl Lifecycle {
    /// What becomes of `request`: never answered, cancelled, or answered
    /// (see [`crate::Line::answer`]), perhaps
    /// first reassigned, then rejected, or perhaps held and resumed, and
    /// completed, perhaps rated.
    pub fn plan(
        rng: &mut Rng,
        hospital: &Hospital,
        request: &Request<'_>,
        fates: &Fates,
    ) -> Lifecycle {
        let mut plan = Lifecycle {
            events: vec![EventType::Requested],
            reassigned_to: None,
        };
        let fate = rng.unit();
        if fate < fates.unanswered {
            return plan;
        }
        if fate < fates.unanswered + fates.cancelled {
            plan.events.push(EventType::Cancelled);
            return plan;
        }
        plan.reassign(rng, hospital, request, fates);
        plan.events.push(request.line.answer(request.priority));
        if request.line.kind == "lab" && rng.chance(fates.rejected_lab) {
            plan.events.push(EventType::Rejected);
            return plan;
        }
        if request.line.pausable() && rng.chance(fates.held) {
            plan.events.push(EventType::OnHold);
            plan.events.push(EventType::Resumed);
        }
        plan.events.push(EventType::Completed);
        if rng.chance(fates.rated) {
            plan.events.push(EventType::Rated);
        }
        plan
    }

    /// A consult passed on to another clinical department than its
    /// supplier and customer, when there is one.
    fn reassign(
        &mut self,
        rng: &mut Rng,
        hospital: &Hospital,
        request: &Request<'_>,
        fates: &Fates,
    ) {
        if request.line.kind != "consult" || !rng.chance(fates.reassigned_consult) {
            return;
        }
        let others: Vec<&str> = hospital
            .clinical
            .iter()
            .map(String::as_str)
            .filter(|s| *s != request.supplier && *s != request.customer)
            .collect();
        if others.is_empty() {
            return;
        }
        self.reassigned_to = Some((*rng.pick(&others)).to_owned());
        self.events.push(EventType::Reassigned);
    }

    /// Whether its last event but those said of a completed hand-off (a
    /// rating) closes the hand-off.
    pub fn closes(&self) -> bool {
        self.events
            .iter()
            .rev()
            .find(|t| !t.follows_the_end())
            .is_some_and(|t| t.is_terminal())
    }
}

/// A 1-5 score for completed work: 3-5 when in time, 1-3 when `late`.
pub fn rating(rng: &mut Rng, late: bool) -> u8 {
    let lowest = if late { 1 } else { 3 };
    lowest + rng.below(3) as u8
}

#[cfg(test)]
mod tests {
    use baton_domain::{event::Rating, Event, Handoff, LifecycleError, Timestamp, Token};
    use proptest::prelude::*;

    use super::*;
    // Ours, not proptest's `Rng` trait.
    use crate::testing;
    use crate::Rng;

    fn token(value: &str) -> Token {
        Token::parse(value).expect("a token")
    }

    /// Plays `lifecycle` through the domain's lifecycle rules, as ingest would.
    fn replay(
        rng: &mut Rng,
        request: &Request<'_>,
        lifecycle: &Lifecycle,
    ) -> Result<Handoff, LifecycleError> {
        let mut handoff = None::<Handoff>;
        for (n, step) in lifecycle.squeeze(rng, 60_000).into_iter().enumerate() {
            let requested = n == 0;
            let mut event = Event {
                event_id: format!("e{n}"),
                handoff_id: token("h1"),
                event_type: step.event_type,
                occurred_at: Timestamp(step.offset_ms),
                kind: requested.then(|| token(&request.line.kind)),
                supplier: if requested {
                    Some(token(request.supplier))
                } else {
                    step.supplier.map(token)
                },
                customer: requested.then(|| token(request.customer)),
                priority: requested.then_some(request.priority),
                actor: "test".into(),
                attributes: Default::default(),
                rating: step.score.map(|score| Rating {
                    score,
                    comment: String::new(),
                }),
            };
            match &mut handoff {
                None => handoff = Some(Handoff::open(&event)?),
                Some(h) => {
                    h.complete(&mut event)?;
                    h.apply(&event)?;
                }
            }
        }
        handoff.ok_or(LifecycleError::UnknownHandoff(token("h1")))
    }

    fn plans(seed: u64, fates: &Fates, n: usize) -> Vec<Lifecycle> {
        let hospital = Hospital::of(&testing::shipped()).expect("a hospital");
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let request = hospital.pick_request(&mut rng);
                Lifecycle::plan(&mut rng, &hospital, &request, fates)
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_plans_and_another_seed_others() {
        let day = Fates::HOSPITAL_DAY;
        assert_eq!(plans(42, &day, 500), plans(42, &day, 500));
        assert_ne!(plans(42, &day, 500), plans(43, &day, 500));
    }

    #[test]
    fn a_day_has_every_turn_of_events_at_about_its_share() {
        let n = 40_000;
        let plans = plans(5, &Fates::HOSPITAL_DAY, n);
        let share = |f: &dyn Fn(&Lifecycle) -> bool| {
            plans.iter().filter(|p| f(p)).count() as f64 / n as f64
        };
        let unanswered = share(&|p| p.events == [EventType::Requested]);
        let cancelled = share(&|p| p.events == [EventType::Requested, EventType::Cancelled]);
        assert!((0.025..0.035).contains(&unanswered), "{unanswered}");
        assert!((0.015..0.025).contains(&cancelled), "{cancelled}");
        for t in [
            EventType::Acknowledged,
            EventType::Started,
            EventType::Reassigned,
            EventType::OnHold,
            EventType::Resumed,
            EventType::Rejected,
            EventType::Completed,
            EventType::Rated,
        ] {
            assert!(share(&|p| p.events.contains(&t)) > 0.0, "no {t:?}");
        }
        let rated = share(&|p| p.events.contains(&EventType::Rated))
            / share(&|p| p.events.contains(&EventType::Completed));
        assert!((0.28..0.32).contains(&rated), "{rated}");
    }

    proptest! {
        /// Every lifecycle opens with its request and is one ingest
        /// accepts; only an unanswered one is left open.
        #[test]
        fn every_lifecycle_opens_with_its_request_and_closes_unless_unanswered(
            seed in any::<u64>(),
        ) {
            let hospital = Hospital::of(&testing::shipped()).expect("a hospital");
            let mut rng = Rng::new(seed);
            for _ in 0..50 {
                let request = hospital.pick_request(&mut rng);
                let day = Lifecycle::plan(&mut rng, &hospital, &request, &Fates::HOSPITAL_DAY);
                prop_assert_eq!(day.events[0], EventType::Requested);
                prop_assert!(day.closes() || day.events == [EventType::Requested], "{:?}", day);
                let handoff = replay(&mut rng, &request, &day);
                prop_assert!(handoff.is_ok(), "{:?}: {:?}", day, handoff);
                prop_assert_eq!(
                    day.reassigned_to.is_some(),
                    day.events.contains(&EventType::Reassigned)
                );

                let answered = Fates::HOSPITAL_DAY.always_answered();
                let closing = Lifecycle::plan(&mut rng, &hospital, &request, &answered);
                prop_assert!(closing.closes(), "{:?}", closing);
            }
        }
    }
}
