//! What a hospital's hand-off traffic looks like, from its catalog: the
//! lines of work (a kind, who supplies it, for whom, at which priorities,
//! how often), picking one, and the shape of one hand-off's lifecycle
//! (which events in which order). `batonctl simulate` times these plans
//! against the promises' targets to play a day; the benchmark squeezes them
//! into a short span to measure with. One generator, so the demo's traffic
//! and the bench's cannot drift apart.
//!
//! It must never do I/O or read a clock: a catalog and a seed in, a plan
//! out, the same on every machine. It never makes ids, and nothing it
//! plans carries patient data: departments, kinds and priorities come from
//! the catalog, and choices from [`Rng`], which is not for secrets.

mod hospital;
mod lifecycle;
mod line;
mod profile;
mod squeeze;

pub use baton_rng::Rng;
pub use hospital::{Hospital, HospitalError, Request, Route};
pub use lifecycle::{rating, Fates, Lifecycle};
pub use line::Line;
pub use profile::Profile;
pub use squeeze::Timed;

#[cfg(test)]
mod testing {
    use baton_domain::Catalog;

    /// The catalog the services ship with.
    pub fn shipped() -> Catalog {
        Catalog::from_json(include_str!("../../../deploy/catalog.json"))
            .expect("the shipped catalog")
    }

    /// The demo's catalog: the shipped promises with targets of seconds.
    pub fn demo() -> Catalog {
        Catalog::from_json(include_str!("../../../deploy/demo-catalog.json"))
            .expect("the demo catalog")
    }
}
