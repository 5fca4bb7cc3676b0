//! The hospital a catalog describes: its lines of work and its clinical
//! departments, and a request picked from them.

use std::collections::BTreeSet;

use baton_domain::{Catalog, Priority};

use crate::{line::Line, Rng};

/// A catalog that gives no traffic to generate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HospitalError {
    #[error("the catalog has no promise without attribute matches and with a target: no line of work to request")]
    NoLines,
    #[error("the catalog has {found} clinical department(s) (ones no promise names as supplier); requests need at least 2")]
    TooFewClinical { found: usize },
}

/// What a catalog offers to request.
#[derive(Debug, Clone)]
pub struct Hospital {
    /// One per kind with a promise, in catalog order.
    pub lines: Vec<Line>,
    /// The departments no promise names as supplier: the wards, theatres
    /// and specialties that ask for work (and give consults).
    pub clinical: Vec<String>,
}

/// One hand-off's routing: what is asked of whom, by whom, how urgently.
#[derive(Debug, Clone, Copy)]
pub struct Request<'h> {
    pub line: &'h Line,
    pub supplier: &'h str,
    pub customer: &'h str,
    pub priority: Priority,
}

/// A (kind, supplier, customer) the traffic can route a hand-off along.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route<'h> {
    pub kind: &'h str,
    pub supplier: &'h str,
    pub customer: &'h str,
}

impl Hospital {
    pub fn of(catalog: &Catalog) -> Result<Hospital, HospitalError> {
        let service: BTreeSet<&str> = catalog
            .promises
            .iter()
            .filter_map(|p| p.supplier.as_ref().map(|s| s.as_str()))
            .collect();
        let clinical: Vec<String> = catalog
            .departments
            .iter()
            .map(|d| d.id.as_str())
            .filter(|d| !service.contains(d))
            .map(str::to_owned)
            .collect();
        if clinical.len() < 2 {
            return Err(HospitalError::TooFewClinical {
                found: clinical.len(),
            });
        }
        let lines: Vec<Line> = catalog
            .kinds
            .iter()
            .filter_map(|kind| Line::of(catalog, kind.as_str(), &clinical))
            .collect();
        if lines.is_empty() {
            return Err(HospitalError::NoLines);
        }
        Ok(Hospital { lines, clinical })
    }

    /// A line, by its profile's weight.
    pub fn pick_line(&self, rng: &mut Rng) -> &Line {
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

    /// Who can ask `supplier` for work: the clinical departments but itself.
    pub fn customers_of<'h>(&'h self, supplier: &'h str) -> impl Iterator<Item = &'h str> + 'h {
        self.clinical
            .iter()
            .map(String::as_str)
            .filter(move |c| *c != supplier)
    }

    /// A request: a line by weight, one of its suppliers, a customer and a
    /// priority the line has a target for.
    pub fn pick_request(&self, rng: &mut Rng) -> Request<'_> {
        let line = self.pick_line(rng);
        let supplier = rng.pick(&line.suppliers).as_str();
        let customers: Vec<&str> = self.customers_of(supplier).collect();
        let customer = *rng.pick(&customers);
        let priority = line.pick_priority(rng);
        Request {
            line,
            supplier,
            customer,
            priority,
        }
    }

    /// Every route a request can take.
    pub fn routes(&self) -> Vec<Route<'_>> {
        let mut routes = Vec::new();
        for line in &self.lines {
            for supplier in &line.suppliers {
                for customer in self.customers_of(supplier) {
                    routes.push(Route {
                        kind: &line.kind,
                        supplier,
                        customer,
                    });
                }
            }
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use baton_domain::Catalog;
    use proptest::prelude::*;

    use super::*;
    // Ours, not proptest's `Rng` trait.
    use crate::testing;
    use crate::Rng;

    fn departments(catalog: &Catalog) -> BTreeSet<&str> {
        catalog.departments.iter().map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn every_route_joins_two_catalog_departments_on_a_promised_kind() {
        for catalog in [testing::shipped(), testing::demo()] {
            let hospital = Hospital::of(&catalog).expect("a hospital");
            let departments = departments(&catalog);
            for line in &hospital.lines {
                assert!(
                    catalog
                        .promises
                        .iter()
                        .any(|p| p.kind.as_str() == line.kind),
                    "{} has no promise",
                    line.kind
                );
                assert!(!line.priorities.is_empty(), "{}", line.kind);
            }
            let routes = hospital.routes();
            assert!(!routes.is_empty());
            for route in routes {
                assert!(departments.contains(route.supplier), "{route:?}");
                assert!(departments.contains(route.customer), "{route:?}");
                assert_ne!(route.supplier, route.customer, "{route:?}");
            }
        }
    }

    #[test]
    fn the_shipped_catalog_gives_every_promised_kind_a_line() {
        let hospital = Hospital::of(&testing::shipped()).expect("a hospital");
        let kinds: Vec<&str> = hospital.lines.iter().map(|l| l.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "repair",
                "lab",
                "imaging",
                "pharmacy",
                "blood",
                "consult",
                "transport",
                "sepsis-antibiotics",
                "surgeon-arrival"
            ]
        );
        // The wards ask; the lab, pharmacy and engineering do not.
        for asks in ["ed", "icu", "ward-5", "cardiology"] {
            assert!(hospital.clinical.iter().any(|c| c == asks), "{asks}");
        }
        for serves in ["lab", "pharmacy", "engineering", "porters"] {
            assert!(!hospital.clinical.iter().any(|c| c == serves), "{serves}");
        }
        // No promise names a consult's supplier: the specialties serve each other.
        let consult = hospital
            .lines
            .iter()
            .find(|l| l.kind == "consult")
            .expect("consults");
        assert_eq!(consult.suppliers, hospital.clinical);
    }

    #[test]
    fn lines_are_picked_by_their_profiles_weight() {
        let hospital = Hospital::of(&testing::shipped()).expect("a hospital");
        let mut rng = Rng::new(3);
        let n = 50_000;
        let mut picked: BTreeMap<&str, usize> = BTreeMap::new();
        for _ in 0..n {
            *picked
                .entry(&hospital.pick_line(&mut rng).kind)
                .or_default() += 1;
        }
        let total: f64 = hospital.lines.iter().map(|l| l.profile.weight).sum();
        for line in &hospital.lines {
            let expected = n as f64 * line.profile.weight / total;
            let got = picked.get(line.kind.as_str()).copied().unwrap_or(0) as f64;
            // Binomial: within 5 standard deviations.
            assert!(
                (got - expected).abs() < 5.0 * expected.sqrt(),
                "{}: {got}, expected about {expected:.0}",
                line.kind
            );
        }
    }

    #[test]
    fn a_catalog_without_traffic_is_refused_saying_why() {
        let one_ward = r#"{
            "departments": [{"id": "lab", "name": "Lab"}, {"id": "icu", "name": "ICU"}],
            "kinds": ["lab"],
            "promises": [{"id": "lab-turnaround", "kind": "lab", "supplier": "lab",
                          "start": "requested", "stop": ["completed"],
                          "targets": {"routine": "4h"}}]
        }"#;
        let catalog = Catalog::from_json(one_ward).expect("a catalog");
        assert_eq!(
            Hospital::of(&catalog).map(|h| h.lines.len()),
            Err(HospitalError::TooFewClinical { found: 1 })
        );
        let no_promises = r#"{
            "departments": [{"id": "icu", "name": "ICU"}, {"id": "ed", "name": "ED"}],
            "kinds": ["lab"]
        }"#;
        let catalog = Catalog::from_json(no_promises).expect("a catalog");
        assert_eq!(
            Hospital::of(&catalog).map(|h| h.lines.len()),
            Err(HospitalError::NoLines)
        );
    }

    proptest! {
        #[test]
        fn every_request_takes_a_route_at_a_priority_its_line_has(seed in any::<u64>()) {
            let catalog = testing::shipped();
            let hospital = Hospital::of(&catalog).expect("a hospital");
            let routes: BTreeSet<Route<'_>> = hospital.routes().into_iter().collect();
            let mut rng = Rng::new(seed);
            for _ in 0..50 {
                let request = hospital.pick_request(&mut rng);
                let route = Route {
                    kind: &request.line.kind,
                    supplier: request.supplier,
                    customer: request.customer,
                };
                prop_assert!(routes.contains(&route), "{:?}", route);
                prop_assert!(request.line.priorities.contains(&request.priority));
            }
        }
    }
}
