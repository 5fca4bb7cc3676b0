//! A hospital day, generated: which hand-offs are requested when, and what
//! becomes of each. Pure: a catalog, a seed and the settings in, a sorted
//! list of planned events out; no I/O, no clock. `cmd::simulate` plays it.
//!
//! - What is requested of whom, and the shape of each hand-off's lifecycle
//!   (reassigned, held, rejected, cancelled, never answered, rated), come
//!   from [`baton_traffic`], the generator the benchmark uses too: lines of
//!   work from the catalog's promises, weighted by kind.
//! - Requests arrive as a Poisson process whose rate follows the hour of
//!   the day ([`HOURLY`]: quiet nights, a morning peak), compressed by
//!   `speed`, so a day of arrivals plays in `24 h / speed`.
//! - Service times are drawn against the target of the promise they will be
//!   judged by (log-normal, median [`baton_traffic::Profile::median`] of the target), so
//!   most are in time and a tail is late, in whatever time base the catalog
//!   uses (seconds in the demo catalog, hours in the shipped one). They are
//!   not compressed: the clocks judge them against those same targets.
//!   Late work is rated lower.
//! - A disruption or two (a supplier down for a while) slows its work.
//!
//! Ids are `sim-<run>-h<n>` (and `sim-<run>-down-<i>`): never a patient,
//! and never what the patient-data screen would take for one (the `h`
//! keeps digits at the end of `<run>` apart from the count).

use baton_domain::{Catalog, EventType, Priority};
use baton_traffic::{rating, Fates, Hospital, Lifecycle, Line, Request, Rng};

/// Relative arrival rate by hour of day (normalised to its mean): quiet at night, a peak
/// in the morning rounds, a second smaller one after lunch.
pub const HOURLY: [f64; 24] = [
    0.35, 0.3, 0.25, 0.25, 0.3, 0.4, 0.6, 1.0, 1.6, 1.9, 1.9, 1.7, 1.3, 1.4, 1.6, 1.5, 1.3, 1.1,
    0.9, 0.8, 0.7, 0.6, 0.5, 0.4,
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// Names the ids, so two runs against one Baton do not collide.
    pub run: String,
    /// Simulated time per real time.
    pub speed: f64,
    /// Hand-offs requested on an average day.
    pub per_day: f64,
    /// Simulated hours to generate arrivals for.
    pub hours: f64,
    /// Hour of day (0-23) the simulation starts at.
    pub start_hour: u32,
}

/// One planned event.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Milliseconds of real time after the start of play.
    pub at_ms: i64,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Handoff {
        handoff_id: String,
        event_type: EventType,
        /// On REQUESTED.
        kind: Option<String>,
        /// On REQUESTED, and the new supplier on REASSIGNED.
        supplier: Option<String>,
        /// On REQUESTED.
        customer: Option<String>,
        priority: Option<Priority>,
        /// On RATED.
        score: Option<u8>,
        /// Simulated hour of day the hand-off was requested in.
        hour: u32,
    },
    Disruption {
        disruption_id: String,
        started: bool,
        supplier: String,
        kind: Option<String>,
        reason: String,
    },
}

const HOUR_MS: f64 = 3_600_000.0;

/// Generates the day. The same catalog and settings give the same events;
/// a catalog that offers no traffic (see [`Hospital::of`]) gives none.
pub fn generate(catalog: &Catalog, settings: &Settings) -> Vec<Planned> {
    let Ok(hospital) = Hospital::of(catalog) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rng = Rng::new(settings.seed);
    let disruptions = plan_disruptions(&mut out, &mut rng, &hospital, settings);
    plan_arrivals(&mut out, &mut rng, &hospital, &disruptions, settings);
    // Stable: events of one hand-off keep their order at equal times.
    out.sort_by_key(|p| p.at_ms);
    out
}

/// Simulated time per real time, kept above 0.
fn speed(settings: &Settings) -> f64 {
    settings.speed.max(1e-6)
}

/// A supplier down for a while: its work of one kind is slower.
struct Disruption<'h> {
    /// Simulated ms after the start.
    from: f64,
    until: f64,
    supplier: &'h str,
    kind: &'h str,
}

impl Disruption<'_> {
    fn slows(&self, supplier: &str, kind: &str, sim_ms: f64) -> bool {
        self.supplier == supplier && self.kind == kind && (self.from..self.until).contains(&sim_ms)
    }
}

/// A disruption or two: a supplier down for 30-90 simulated minutes,
/// somewhere in the busy part of the day. Plans their start and end.
fn plan_disruptions<'h>(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    hospital: &'h Hospital,
    settings: &Settings,
) -> Vec<Disruption<'h>> {
    let span_ms = settings.hours * HOUR_MS;
    let mut disruptions = Vec::new();
    let count = if settings.hours >= 12.0 { 2 } else { 1 };
    for i in 0..count {
        let line = hospital.pick_line(rng);
        if !line.has_named_supplier() {
            continue;
        }
        let supplier = rng.pick(&line.suppliers).as_str();
        let from = span_ms * (0.2 + 0.6 * rng.unit());
        let until = from + HOUR_MS * (0.5 + rng.unit());
        let id = format!("sim-{}-down-{i}", settings.run);
        let reason = match line.kind.as_str() {
            "lab" => "analyzer down",
            "pharmacy" => "a drug out of stock",
            "imaging" => "scanner down",
            "repair" => "short of engineers",
            _ => "short of staff",
        };
        for (at, started) in [(from, true), (until, false)] {
            out.push(Planned {
                at_ms: (at / speed(settings)) as i64,
                what: What::Disruption {
                    disruption_id: id.clone(),
                    started,
                    supplier: supplier.to_owned(),
                    kind: Some(line.kind.clone()),
                    reason: reason.to_owned(),
                },
            });
        }
        disruptions.push(Disruption {
            from,
            until,
            supplier,
            kind: &line.kind,
        });
    }
    disruptions
}

/// The day's requests, arriving as a Poisson process thinned by the hour
/// of day, and what becomes of each.
fn plan_arrivals(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    hospital: &Hospital,
    disruptions: &[Disruption<'_>],
    settings: &Settings,
) {
    let span_ms = settings.hours * HOUR_MS;
    let peak = HOURLY.iter().copied().fold(0.0, f64::max);
    let mean = HOURLY.iter().sum::<f64>() / 24.0;
    // Arrivals per simulated ms at the peak hour.
    let peak_rate = settings.per_day / 24.0 / HOUR_MS * peak / mean;
    let mut sim_ms = 0.0;
    let mut n = 0u64;
    loop {
        sim_ms += rng.exponential(1.0 / peak_rate);
        if sim_ms >= span_ms {
            break;
        }
        let hour = ((settings.start_hour as f64 + sim_ms / HOUR_MS) as u64 % 24) as u32;
        // Thinning: keep an arrival with the hour's share of the peak rate.
        if !rng.chance(HOURLY[hour as usize] / peak) {
            continue;
        }
        let request = hospital.pick_request(rng);
        let slowed = disruptions
            .iter()
            .any(|d| d.slows(request.supplier, &request.line.kind, sim_ms));
        let handoff_id = format!(
            "sim-{}-h{}",
            settings.run,
            baton_domain::privacy::id_number(n)
        );
        n += 1;
        let lifecycle = Lifecycle::plan(rng, hospital, &request, &Fates::HOSPITAL_DAY);
        let plan = HandoffPlan {
            handoff_id,
            request,
            requested_ms: sim_ms / speed(settings),
            hour,
            slowed,
        };
        plan.time(out, rng, &lifecycle);
    }
}

struct HandoffPlan<'h> {
    handoff_id: String,
    request: Request<'h>,
    /// Real ms after the start of play.
    requested_ms: f64,
    hour: u32,
    slowed: bool,
}

impl HandoffPlan<'_> {
    /// Plans one of the hand-off's events at `at` (real ms); what the
    /// request carries goes on REQUESTED only.
    fn push(
        &self,
        out: &mut Vec<Planned>,
        at: f64,
        event_type: EventType,
        supplier: Option<&str>,
        score: Option<u8>,
    ) {
        let requested = event_type == EventType::Requested;
        out.push(Planned {
            at_ms: at as i64,
            what: What::Handoff {
                handoff_id: self.handoff_id.clone(),
                event_type,
                kind: requested.then(|| self.request.line.kind.clone()),
                supplier: supplier.map(str::to_owned),
                customer: requested.then(|| self.request.customer.to_owned()),
                priority: requested.then_some(self.request.priority),
                score,
                hour: self.hour,
            },
        });
    }

    /// How long, as a share of the target, with a heavier hand when the
    /// supplier is disrupted.
    fn draw(&self, rng: &mut Rng) -> f64 {
        let profile = self.request.line.profile;
        let slow = if self.slowed { 2.5 } else { 1.0 };
        profile.median * slow * (profile.sigma * rng.normal()).exp()
    }

    /// Plans the events of `lifecycle` at service times drawn against
    /// the promises' targets.
    fn time(&self, out: &mut Vec<Planned>, rng: &mut Rng, lifecycle: &Lifecycle) {
        let targets = Targets::of(self.request.line, self.request.priority);
        let mut clock = Timeline {
            t: self.requested_ms,
            late: false,
            work_share: None,
            resumed_at: None,
        };
        for event_type in &lifecycle.events {
            let (at, supplier, score) = clock.next(
                rng,
                self,
                &targets,
                *event_type,
                lifecycle.reassigned_to.as_deref(),
            );
            self.push(out, at, *event_type, supplier, score);
        }
    }
}

/// The targets (ms) a hand-off's times are drawn against.
struct Targets {
    /// Of the promise stopped by an acknowledgement or a start.
    respond: Option<f64>,
    /// Of the promise stopped by completion.
    complete: Option<f64>,
    /// The response target, else the completion target, else an hour.
    base: f64,
}

impl Targets {
    fn of(line: &Line, priority: Priority) -> Targets {
        let ms = |stops: &[EventType]| line.target(priority, stops).map(|d| d.as_millis() as f64);
        let respond = ms(&[EventType::Acknowledged, EventType::Started]);
        let complete = ms(&[EventType::Completed]);
        Targets {
            respond,
            complete,
            base: respond.or(complete).unwrap_or(HOUR_MS),
        }
    }

    /// What the work is judged by: the completion target, else the base.
    fn work(&self) -> f64 {
        self.complete.unwrap_or(self.base)
    }
}

/// Where one hand-off's timing stands, event by event.
struct Timeline {
    /// Real ms of the last answer or step of work.
    t: f64,
    /// Whether any of it was late (rated lower).
    late: bool,
    /// The work's service time as a share of its target, once drawn.
    work_share: Option<f64>,
    /// When a hold ends.
    resumed_at: Option<f64>,
}

impl Timeline {
    /// The work's share, drawn once for a hold and the completion.
    fn work_share(&mut self, rng: &mut Rng, plan: &HandoffPlan<'_>) -> f64 {
        match self.work_share {
            Some(share) => share,
            None => {
                let share = plan.draw(rng);
                self.work_share = Some(share);
                share
            }
        }
    }

    /// The time of `event_type` (real ms), and the supplier and score it
    /// carries.
    fn next<'a>(
        &mut self,
        rng: &mut Rng,
        plan: &HandoffPlan<'a>,
        targets: &Targets,
        event_type: EventType,
        reassigned_to: Option<&'a str>,
    ) -> (f64, Option<&'a str>, Option<u8>) {
        let t0 = plan.requested_ms;
        match event_type {
            EventType::Requested => (t0, Some(plan.request.supplier), None),
            EventType::Cancelled => (t0 + targets.base * (0.2 + rng.unit()), None, None),
            // A consult passed on to another specialty: the response clock restarts.
            EventType::Reassigned => {
                self.t += targets.base * plan.draw(rng) * 0.6;
                (self.t, reassigned_to, None)
            }
            // The supplier's answer, against the response target; work
            // started where there is none.
            EventType::Acknowledged | EventType::Started => {
                match targets.respond {
                    Some(target) => {
                        let share = plan.draw(rng);
                        self.t += target * share;
                        self.late = share > 1.0;
                    }
                    None => self.t += targets.base * plan.draw(rng) * 0.3,
                }
                (self.t, None, None)
            }
            EventType::Rejected => (self.t + targets.base * 0.1, None, None),
            EventType::OnHold => {
                let work = targets.work();
                let hold_at = self.t + work * self.work_share(rng, plan) * 0.3;
                let hold_for = work * (0.2 + rng.unit() * 0.5);
                self.resumed_at = Some(hold_at + hold_for);
                self.t += hold_for;
                (hold_at, None, None)
            }
            EventType::Resumed => (self.resumed_at.take().unwrap_or(self.t), None, None),
            EventType::Completed => {
                let mut share = self.work_share(rng, plan);
                if targets.complete.is_none() && targets.respond.is_some() {
                    share *= 0.5; // the promise is the response; the work follows it
                }
                self.late |= targets.complete.is_some() && share > 1.0;
                self.t += targets.work() * share;
                (self.t, None, None)
            }
            EventType::Rated => (
                self.t + targets.work() * 0.05,
                None,
                Some(rating(rng, self.late)),
            ),
            // Not in a planned lifecycle; at the last step's time if it were.
            EventType::Reprioritized | EventType::Amended | EventType::EscalationAcknowledged => {
                (self.t, None, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn catalog() -> Catalog {
        let text = include_str!("../../../deploy/catalog.json");
        Catalog::from_json(text).expect("the shipped catalog")
    }

    fn settings(seed: u64, hours: f64) -> Settings {
        Settings {
            seed,
            run: "t".into(),
            speed: 60.0,
            per_day: 2_000.0,
            hours,
            start_hour: 0,
        }
    }

    fn requests(events: &[Planned]) -> Vec<(u32, &str)> {
        events
            .iter()
            .filter_map(|p| match &p.what {
                What::Handoff {
                    event_type: EventType::Requested,
                    hour,
                    kind,
                    ..
                } => Some((*hour, kind.as_deref().unwrap_or(""))),
                _ => None,
            })
            .collect()
    }

    /// Every id a simulated day sends passes ingest's patient-data screen,
    /// also with the clock's 7-digit run and a third-digit day as
    /// `batonctl simulate` names them, and 20,000 hand-offs a day.
    #[test]
    fn every_id_passes_the_patient_data_screen() {
        let catalog = catalog();
        let busy = Settings {
            run: "9999999d123".into(),
            per_day: 20_000.0,
            ..settings(5, 24.0)
        };
        let events = generate(&catalog, &busy);
        let mut ids = 0;
        for planned in &events {
            let (id, event_id) = match &planned.what {
                What::Handoff {
                    handoff_id,
                    event_type,
                    ..
                } => (
                    handoff_id,
                    Some(format!("{handoff_id}-{}", event_type.name())),
                ),
                What::Disruption { disruption_id, .. } => (disruption_id, None),
            };
            for text in std::iter::once(id.as_str()).chain(event_id.as_deref()) {
                assert_eq!(baton_domain::privacy::screen(text), None, "{text}");
                ids += 1;
            }
        }
        assert!(ids > 40_000, "{ids} ids");
    }

    #[test]
    fn the_same_seed_gives_the_same_day_and_another_seed_another() {
        let catalog = catalog();
        let a = generate(&catalog, &settings(42, 24.0));
        let b = generate(&catalog, &settings(42, 24.0));
        let c = generate(&catalog, &settings(43, 24.0));
        assert!(a.len() > 1_000, "{} events", a.len());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn arrivals_follow_the_hour_of_day_curve() {
        let catalog = catalog();
        // Ten days, so each hour has enough arrivals to compare.
        let events = generate(&catalog, &settings(7, 240.0));
        let mut per_hour = [0f64; 24];
        for (hour, _) in requests(&events) {
            per_hour[hour as usize] += 1.0;
        }
        let total: f64 = per_hour.iter().sum();
        let expected_total = 2_000.0 * 10.0;
        assert!(
            (total - expected_total).abs() < expected_total * 0.05,
            "{total} requests, expected about {expected_total}"
        );
        let curve: f64 = HOURLY.iter().sum();
        for (hour, count) in per_hour.iter().enumerate() {
            let expected = total * HOURLY[hour] / curve;
            // Poisson: within 5 standard deviations.
            assert!(
                (count - expected).abs() < 5.0 * expected.sqrt(),
                "hour {hour}: {count} requests, expected about {expected:.0}"
            );
        }
        // The morning peak is several times the small hours.
        assert!(per_hour[9] > 4.0 * per_hour[3]);
    }

    #[test]
    fn every_hand_off_starts_with_its_request_and_events_are_in_time_order() {
        let catalog = catalog();
        let events = generate(&catalog, &settings(3, 24.0));
        assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        let mut seen = BTreeSet::new();
        let mut kinds = BTreeSet::new();
        let mut types = BTreeSet::new();
        let mut disruptions = 0;
        for p in &events {
            match &p.what {
                What::Handoff {
                    handoff_id,
                    event_type,
                    kind,
                    ..
                } => {
                    if *event_type == EventType::Requested {
                        assert!(
                            seen.insert(handoff_id.clone()),
                            "{handoff_id} requested twice"
                        );
                        kinds.insert(kind.clone().unwrap_or_default());
                    } else {
                        assert!(
                            seen.contains(handoff_id),
                            "{handoff_id}: {event_type:?} before its request"
                        );
                    }
                    types.insert(format!("{event_type:?}"));
                }
                What::Disruption { .. } => disruptions += 1,
            }
        }
        assert!(kinds.len() >= 6, "{kinds:?}");
        for t in [
            "Reassigned",
            "OnHold",
            "Resumed",
            "Rejected",
            "Rated",
            "Cancelled",
        ] {
            assert!(types.contains(t), "no {t} in {types:?}");
        }
        assert!(
            (2..=4).contains(&disruptions),
            "{disruptions} disruption events"
        );
    }

    #[test]
    fn speed_compresses_arrivals() {
        let catalog = catalog();
        let mut fast = settings(9, 24.0);
        fast.speed = 288.0;
        let events = generate(&catalog, &fast);
        let last_request = events
            .iter()
            .filter(|p| {
                matches!(
                    p.what,
                    What::Handoff {
                        event_type: EventType::Requested,
                        ..
                    }
                )
            })
            .map(|p| p.at_ms)
            .max()
            .unwrap_or(0);
        // A day at 288x is 5 minutes.
        assert!(last_request <= 300_000, "{last_request}");
        assert!(last_request > 270_000, "{last_request}");
    }
}
