//! Baton's gateway: the hospital's HL7 v2 systems (the laboratory, order
//! entry, the pharmacy) send orders and results over MLLP, and newer ones
//! FHIR `Task`s over HTTP; the gateway maps each to hand-off events through
//! a mapping file and appends them
//! through ingest's gRPC contract, so every rule, authorization and
//! idempotency guarantee of ingest applies unchanged. A sender hears AA only
//! once ingest has stored every event of its message.
//!
//! Layout:
//! - [`mllp`]: the framing (pure).
//! - [`hl7`]: the segments Baton reads, parsed; every other segment is
//!   dropped unread (pure).
//! - [`mapping`]: the mapping file.
//! - [`translate`]: a message to its events, with ids from a keyed hash (pure).
//! - [`ack`]: AA, AE and AR acknowledgements (pure).
//! - [`handle`]: one message from frame to ACK, appending through ingest;
//!   [`appender`]: many senders' events to ingest in shared batches.
//! - [`fhir`], [`fhir_notice`]: FHIR `Task` and subscription notifications
//!   read, and what a Task's change means for its hand-off (pure);
//!   [`fhir_fetch`]: the Tasks of id-only notifications, from the one
//!   configured FHIR server; [`fhir_api`]: their routes on the side port.
//! - [`server`]: wiring: the MLLP port, the side port, the supervisor.
//! - [`metrics`]: Prometheus metrics.
//!
//! It must never keep, log, forward or echo anything of a patient: PID,
//! PV1, NK1, IN1, OBX, NTE and every other segment than MSH, ORC, OBR, TQ1
//! and SPM (of which only SPM-18 is kept) are dropped as a message is parsed, and an ACK carries only the
//! sender's application, facility and control id. It must never answer AA
//! for an event ingest has not stored.

pub mod ack;
pub mod appender;
pub mod config;
pub mod fhir;
pub mod fhir_api;
pub mod fhir_fetch;
pub mod fhir_notice;
pub mod handle;
pub mod hl7;
pub mod mapping;
pub mod metrics;
pub mod mllp;
pub mod server;
pub mod translate;

pub use config::Config;
pub use server::run;

impl baton_runtime::serve::Service for Config {
    const NAME: &'static str = "baton-gateway";
    type Error = server::StartError;

    fn listen_address(&self) -> Option<std::net::SocketAddr> {
        Some(self.listen)
    }

    fn http_address(&self) -> std::net::SocketAddr {
        self.http_listen
    }

    fn run(
        self,
        listener: Option<tokio::net::TcpListener>,
        http: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        // `serve::main` binds `--listen`, which the gateway always has.
        let listener = listener.expect("the MLLP port is bound by serve::main");
        server::run(self, listener, http, shutdown)
    }
}
