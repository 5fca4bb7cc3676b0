//! A hospital day, generated: which hand-offs are requested when, and what
//! becomes of each. Pure: a catalog, a seed and the settings in, a sorted
//! list of planned events out; no I/O, no clock. `cmd::simulate` plays it.
//!
//! - Departments and pairs come from the catalog's promises: a promise
//!   naming its supplier (the lab) serves the clinical departments; one that
//!   does not (consults) is served by one clinical department to another.
//! - Requests arrive as a Poisson process whose rate follows the hour of
//!   the day ([`HOURLY`]: quiet nights, a morning peak), compressed by
//!   `speed`, so a day of arrivals plays in `24 h / speed`.
//! - Service times are drawn against the target of the promise they will be
//!   judged by (log-normal, median [`Profile::median`] of the target), so
//!   most are in time and a tail is late, in whatever time base the catalog
//!   uses (seconds in the demo catalog, hours in the shipped one). They are
//!   not compressed: the clocks judge them against those same targets.
//! - Some consults are reassigned to another specialty, some work is put on
//!   hold and resumed, some samples rejected, some requests cancelled or
//!   never answered (those breach); completed work is often rated 1-5, late
//!   work lower. A disruption or two (a supplier down for a while) slows its
//!   work.
//!
//! Ids are `sim-<run>-h<n>` (and `sim-<run>-down-<i>`): never a patient,
//! and never what the patient-data screen would take for one (the `h`
//! keeps digits at the end of `<run>` apart from the count).

use std::collections::BTreeSet;

use baton_domain::{Catalog, EventType, Policy, Priority};

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

/// How a kind of work behaves.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Share of the day's requests.
    weight: f64,
    /// Median service time as a share of the promise's target.
    median: f64,
    /// Log-normal spread (larger: a fatter tail of late ones).
    sigma: f64,
}

fn profile(kind: &str) -> Profile {
    let (weight, median, sigma) = match kind {
        "lab" => (0.32, 0.45, 0.55),
        "transport" => (0.14, 0.5, 0.6),
        "pharmacy" => (0.12, 0.4, 0.6),
        "imaging" => (0.1, 0.5, 0.55),
        "consult" => (0.1, 0.45, 0.75),
        "repair" => (0.08, 0.55, 0.7),
        "blood" => (0.06, 0.45, 0.5),
        // The Sepsis log: about 4 in 10 get antibiotics within the hour.
        "sepsis-antibiotics" => (0.04, 1.2, 0.9),
        _ => (0.05, 0.5, 0.6),
    };
    Profile {
        weight,
        median,
        sigma,
    }
}

pub use baton_rng::Rng;

/// A kind of work the catalog promises, and who can do it for whom.
#[derive(Debug)]
struct Line<'c> {
    kind: &'c str,
    profile: Profile,
    /// Promises covering the kind without attribute matches.
    promises: Vec<&'c Policy>,
    suppliers: Vec<&'c str>,
    priorities: Vec<Priority>,
}

/// What the catalog offers to simulate.
#[derive(Debug)]
struct Hospital<'c> {
    lines: Vec<Line<'c>>,
    clinical: Vec<&'c str>,
}

impl<'c> Hospital<'c> {
    fn of(catalog: &'c Catalog) -> Hospital<'c> {
        let service: BTreeSet<&str> = catalog
            .promises
            .iter()
            .filter_map(|p| p.supplier.as_ref().map(|s| s.as_str()))
            .collect();
        let clinical: Vec<&str> = catalog
            .departments
            .iter()
            .map(|d| d.id.as_str())
            .filter(|d| !service.contains(d))
            .collect();
        let mut lines = Vec::new();
        for kind in &catalog.kinds {
            let promises: Vec<&Policy> = catalog
                .promises
                .iter()
                .filter(|p| p.kind == *kind && p.matches.is_empty())
                .collect();
            if promises.is_empty() {
                continue;
            }
            let mut suppliers: Vec<&str> = promises
                .iter()
                .filter_map(|p| p.supplier.as_ref().map(|s| s.as_str()))
                .collect();
            suppliers.dedup();
            if suppliers.is_empty() {
                suppliers = clinical.clone();
            }
            let priorities: BTreeSet<Priority> = promises
                .iter()
                .flat_map(|p| p.targets.keys().copied())
                .collect();
            lines.push(Line {
                kind: kind.as_str(),
                profile: profile(kind.as_str()),
                promises,
                suppliers,
                priorities: priorities.into_iter().collect(),
            });
        }
        Hospital { lines, clinical }
    }

    fn pick_line(&self, rng: &mut Rng) -> &Line<'c> {
        let total: f64 = self.lines.iter().map(|l| l.profile.weight).sum();
        let mut x = rng.unit() * total;
        for line in &self.lines {
            x -= line.profile.weight;
            if x < 0.0 {
                return line;
            }
        }
        &self.lines[self.lines.len() - 1]
    }
}

/// The target (ms) of the first promise of `line` that stops on one of
/// `stops` and has a target for `priority`.
fn target_ms(line: &Line<'_>, priority: Priority, stops: &[EventType]) -> Option<f64> {
    line.promises
        .iter()
        .filter(|p| p.stop.iter().any(|s| stops.contains(s)))
        .find_map(|p| p.target(priority))
        .map(|d| d.as_millis() as f64)
}

const HOUR_MS: f64 = 3_600_000.0;

/// Generates the day. The same catalog and settings give the same events.
pub fn generate(catalog: &Catalog, settings: &Settings) -> Vec<Planned> {
    let hospital = Hospital::of(catalog);
    let mut out = Vec::new();
    if hospital.lines.is_empty() || hospital.clinical.len() < 2 {
        return out;
    }
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
struct Disruption<'c> {
    /// Simulated ms after the start.
    from: f64,
    until: f64,
    supplier: &'c str,
    kind: &'c str,
}

impl Disruption<'_> {
    fn slows(&self, supplier: &str, kind: &str, sim_ms: f64) -> bool {
        self.supplier == supplier && self.kind == kind && (self.from..self.until).contains(&sim_ms)
    }
}

/// A disruption or two: a supplier down for 30-90 simulated minutes,
/// somewhere in the busy part of the day. Plans their start and end.
fn plan_disruptions<'c>(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    hospital: &Hospital<'c>,
    settings: &Settings,
) -> Vec<Disruption<'c>> {
    let span_ms = settings.hours * HOUR_MS;
    let mut disruptions = Vec::new();
    let count = if settings.hours >= 12.0 { 2 } else { 1 };
    for i in 0..count {
        let line = hospital.pick_line(rng);
        if line.promises.iter().all(|p| p.supplier.is_none()) {
            continue;
        }
        let supplier = *rng.pick(&line.suppliers);
        let from = span_ms * (0.2 + 0.6 * rng.unit());
        let until = from + HOUR_MS * (0.5 + rng.unit());
        let id = format!("sim-{}-down-{i}", settings.run);
        let reason = match line.kind {
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
                    kind: Some(line.kind.to_owned()),
                    reason: reason.to_owned(),
                },
            });
        }
        disruptions.push(Disruption {
            from,
            until,
            supplier,
            kind: line.kind,
        });
    }
    disruptions
}

/// The day's requests, arriving as a Poisson process thinned by the hour
/// of day, and what becomes of each.
fn plan_arrivals(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    hospital: &Hospital<'_>,
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
        let line = hospital.pick_line(rng);
        let supplier = *rng.pick(&line.suppliers);
        let customers: Vec<&str> = hospital
            .clinical
            .iter()
            .copied()
            .filter(|c| *c != supplier)
            .collect();
        let customer = *rng.pick(&customers);
        let priority = pick_priority(rng, &line.priorities);
        let slowed = disruptions
            .iter()
            .any(|d| d.slows(supplier, line.kind, sim_ms));
        let handoff_id = format!(
            "sim-{}-h{}",
            settings.run,
            baton_domain::privacy::id_number(n)
        );
        n += 1;
        plan_handoff(
            out,
            rng,
            &HandoffPlan {
                handoff_id,
                line,
                supplier,
                customer,
                priority,
                requested_ms: sim_ms / speed(settings),
                hour,
                slowed,
                other_suppliers: &hospital.clinical,
            },
        );
    }
}

fn pick_priority(rng: &mut Rng, available: &[Priority]) -> Priority {
    let wanted = match rng.unit() {
        x if x < 0.7 => Priority::Routine,
        x if x < 0.92 => Priority::Urgent,
        _ => Priority::Stat,
    };
    if available.contains(&wanted) {
        wanted
    } else {
        *rng.pick(available)
    }
}

struct HandoffPlan<'a, 'c> {
    handoff_id: String,
    line: &'a Line<'c>,
    supplier: &'c str,
    customer: &'c str,
    priority: Priority,
    /// Real ms after the start of play.
    requested_ms: f64,
    hour: u32,
    slowed: bool,
    other_suppliers: &'a [&'c str],
}

impl HandoffPlan<'_, '_> {
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
                kind: requested.then(|| self.line.kind.to_owned()),
                supplier: supplier.map(str::to_owned),
                customer: requested.then(|| self.customer.to_owned()),
                priority: requested.then_some(self.priority),
                score,
                hour: self.hour,
            },
        });
    }

    /// How long, as a share of the target, with a heavier hand when the
    /// supplier is disrupted.
    fn draw(&self, rng: &mut Rng) -> f64 {
        let slow = if self.slowed { 2.5 } else { 1.0 };
        self.line.profile.median * slow * (self.line.profile.sigma * rng.normal()).exp()
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
    fn of(line: &Line<'_>, priority: Priority) -> Targets {
        let respond = target_ms(
            line,
            priority,
            &[EventType::Acknowledged, EventType::Started],
        );
        let complete = target_ms(line, priority, &[EventType::Completed]);
        Targets {
            respond,
            complete,
            base: respond.or(complete).unwrap_or(HOUR_MS),
        }
    }
}

fn plan_handoff(out: &mut Vec<Planned>, rng: &mut Rng, plan: &HandoffPlan<'_, '_>) {
    let t0 = plan.requested_ms;
    plan.push(out, t0, EventType::Requested, Some(plan.supplier), None);
    let targets = Targets::of(plan.line, plan.priority);

    let fate = rng.unit();
    if fate < 0.03 {
        return; // never answered: its clocks breach
    }
    if fate < 0.05 {
        let at = t0 + targets.base * (0.2 + rng.unit());
        plan.push(out, at, EventType::Cancelled, None, None);
        return;
    }
    let t = plan_reassignment(out, rng, plan, &targets, t0);
    let (t, late) = plan_response(out, rng, plan, &targets, t);
    if plan.line.kind == "lab" && rng.chance(0.03) {
        plan.push(out, t + targets.base * 0.1, EventType::Rejected, None, None);
        return;
    }
    plan_work(out, rng, plan, &targets, t, late);
}

/// A consult passed on to another specialty: the response clock restarts.
/// Returns the time after it (`t` when there is none).
fn plan_reassignment(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    plan: &HandoffPlan<'_, '_>,
    targets: &Targets,
    t: f64,
) -> f64 {
    if plan.line.kind != "consult" || !rng.chance(0.15) {
        return t;
    }
    let others: Vec<&str> = plan
        .other_suppliers
        .iter()
        .copied()
        .filter(|s| *s != plan.supplier && *s != plan.customer)
        .collect();
    if others.is_empty() {
        return t;
    }
    let t = t + targets.base * plan.draw(rng) * 0.6;
    plan.push(
        out,
        t,
        EventType::Reassigned,
        Some(*rng.pick(&others)),
        None,
    );
    t
}

/// The supplier's first answer after `t`: acknowledged against the response
/// target, or else work started. Returns its time and whether it was late.
fn plan_response(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    plan: &HandoffPlan<'_, '_>,
    targets: &Targets,
    t: f64,
) -> (f64, bool) {
    match targets.respond {
        Some(target) => {
            let share = plan.draw(rng);
            let t = t + target * share;
            plan.push(out, t, EventType::Acknowledged, None, None);
            (t, share > 1.0)
        }
        None => {
            let t = t + targets.base * plan.draw(rng) * 0.3;
            plan.push(out, t, EventType::Started, None, None);
            (t, false)
        }
    }
}

/// The work after the answer at `t`: perhaps held and resumed, then
/// completed, and often rated (lower when any of it was `late`).
fn plan_work(
    out: &mut Vec<Planned>,
    rng: &mut Rng,
    plan: &HandoffPlan<'_, '_>,
    targets: &Targets,
    mut t: f64,
    mut late: bool,
) {
    let work = targets.complete.unwrap_or(targets.base);
    let mut share = plan.draw(rng);
    let pausable = plan.line.promises.iter().any(|p| !p.pause.is_empty());
    if pausable && rng.chance(0.08) {
        let hold_at = t + work * share * 0.3;
        let hold_for = work * (0.2 + rng.unit() * 0.5);
        plan.push(out, hold_at, EventType::OnHold, None, None);
        plan.push(out, hold_at + hold_for, EventType::Resumed, None, None);
        t += hold_for;
    }
    if targets.complete.is_none() && targets.respond.is_some() {
        share *= 0.5; // the promise is the response; the work follows it
    }
    late |= targets.complete.is_some() && share > 1.0;
    t += work * share;
    plan.push(out, t, EventType::Completed, None, None);
    if rng.chance(0.3) {
        let score = if late {
            1 + rng.below(3) as u8
        } else {
            3 + rng.below(3) as u8
        };
        plan.push(out, t + work * 0.05, EventType::Rated, None, Some(score));
    }
}

#[cfg(test)]
mod tests {
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
