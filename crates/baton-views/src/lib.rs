//! Baton's SLA views in sled: a cache of the event log, never a record.
//!
//! The projector folds events into these views; the query service reads them.
//! Everything here can be rebuilt from the `BATON_HANDOFFS` stream, and is
//! rebuilt whenever it is in doubt: an unreadable store, a store written by
//! another schema, or views computed under another catalog.
//!
//! Layout:
//! - [`view`]: what the views store (hand-offs, breaches, disruptions, figures).
//! - [`compact`]: what a view keeps of its hand-off's request and events.
//! - [`keys`]: the key space of the tree: every kind of key, built and read back.
//! - [`codec`]: stored values, encoded and decoded.
//! - [`store`]: the sled tree, opening (or discarding) it, and atomic
//!   batches with read-your-writes.
//! - [`projection`]: folding one event (or one passing deadline) into the
//!   views, in a batch that also records the stream position.
//! - [`query`]: reading the views.
//! - `cache`: decoded values of one batch, encoded once at its commit.
//! - `timers`: the running clocks' next deadlines, in memory, derived
//!   from the stored views.
//!
//! It must never talk to NATS or read the wall clock: the projector passes
//! events and `now` in.

mod cache;
pub mod codec;
pub mod compact;
pub mod keys;
pub mod projection;
pub mod query;
pub mod store;
mod timers;
pub mod view;

pub use projection::{ApplyOutcome, Projection, Refusal};
pub use query::{BreachFilter, Bucketing, ComplianceScope, HandoffFilter, MatrixCell, Page};
pub use store::{Discarded, Opened, Sealed, Views};
pub use view::{
    Acknowledgement, BreachRecord, Cause, Correction, DisruptionView, HandoffView, OpenClock,
    PairContribution, PairTallies, RunningClock, Signal,
};

/// Why the views could not be read or written. Cloned to be reported both
/// where it happened and by whoever ends the process over it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ViewsError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value under {key} is unreadable: {problem}")]
    Corrupt {
        key: String,
        #[source]
        problem: codec::Unreadable,
    },
    /// A stored key that is none of the views' keys.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A value that could not be encoded: nothing is stored in its place.
    #[error("a {what} could not be encoded: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    /// A batch was computed over one that never landed; it must not land
    /// without it.
    #[error("the batch was computed over one that failed to apply")]
    OverFailedBatch,
    /// The views hold events the stream does not (it lost them, or was
    /// replaced): they are marked in doubt and rebuilt at the next start.
    #[error("the views are at stream sequence {position} but the stream ends at {last}: they are in doubt and will be rebuilt from the stream at the next start")]
    AheadOfStream { position: u64, last: u64 },
    #[error("cannot reset the data dir {path}: {source}")]
    Reset {
        path: String,
        source: std::sync::Arc<std::io::Error>,
    },
}
