//! Baton's domain: what a hand-off is, which lifecycle transitions it may take,
//! what the hospital promised (the catalog), and how each promise's clock runs.
//!
//! Everything here is pure, deterministic Rust. This crate must never do I/O,
//! read a clock, spawn a task or know about NATS, sled, gRPC or protobuf: time
//! comes in as a value, so the same events give the same answers live and on
//! replay, and every rule can be unit- and property-tested in microseconds.
//!
//! Layout:
//! - [`id`]: subject-safe tokens (department, kind, hand-off and policy ids).
//! - [`time`]: event time as milliseconds since the Unix epoch.
//! - [`event`]: one fact about a hand-off, its validation, and the envelope
//!   ingest records it in.
//! - [`lifecycle`]: the hand-off state machine.
//! - [`calendar`]: when clocks run: always, or working hours in a time zone.
//! - [`catalog`]: departments, kinds and promises, parsed and validated from JSON.
//! - [`clock`]: a promise's clock over a hand-off's events.
//! - [`disruption`]: a supplier's announced inability to serve, and whom it affects.
//! - [`histogram`]: a mergeable duration histogram with a stated error bound.
//! - [`compliance`]: how one clock counts toward the compliance figures.
//! - [`access`]: the caller registry and who may append what.
//! - [`append`]: whether an event is appended to its hand-off, and as what.
//! - [`signal`]: which breaches, warnings and corrections re-evaluated clocks call for.
//! - [`privacy`]: screening text and attributes for patient data.
//! - [`validation`]: the error a check of an input returns, naming the field.

pub mod access;
pub mod append;
pub mod calendar;
pub mod catalog;
pub mod clock;
pub mod compliance;
pub mod disruption;
pub mod event;
pub mod histogram;
pub mod id;
pub mod lifecycle;
pub mod privacy;
pub mod signal;
pub mod time;
pub mod validation;

pub use catalog::{Catalog, CatalogError, Policy};
pub use clock::{ClockOutcome, SlaState};
pub use event::{Envelope, Event, EventType, Priority, RecordedEvent, ValidationError};
pub use id::Token;
pub use lifecycle::{Handoff, HandoffStatus, LifecycleError};
pub use time::Timestamp;
