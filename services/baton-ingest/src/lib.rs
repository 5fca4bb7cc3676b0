//! Baton's ingest service: clinical systems append hand-off events over
//! gRPC; each is checked against the catalog and the hand-off's lifecycle and
//! then appended to the `BATON_HANDOFFS` stream. A client hears OK only after
//! JetStream has stored the event.
//!
//! Layout:
//! - [`config`]: flags and their environment twins.
//! - [`ingestor`]: the I/O around the append rules
//!   ([`baton_domain::append`]): reads a hand-off's history, appends what
//!   they decide with optimistic concurrency, and keeps a cache of
//!   hand-off histories any replica can rebuild.
//! - `recent`: that cache, bounded, keeping the hand-offs in use.
//! - [`error`]: the one place errors become gRPC status codes.
//! - [`grpc`]: the `baton.v1.Ingest` service over the ingestor.
//! - [`metrics`]: Prometheus metrics on the HTTP side port.
//! - [`server`]: wiring: NATS, streams, gRPC with health and reflection.
//!
//! It must never keep state that the stream does not also hold: its cache is
//! only a shortcut, checked by JetStream on every append.

/// This service's name: its spans' `baton.service` and tracer scope.
pub const NAME: &str = "baton-ingest";

pub mod config;
pub mod error;
pub mod grpc;
pub mod ingestor;
pub mod metrics;
mod recent;
pub mod server;

pub use config::Config;
pub use server::run;
