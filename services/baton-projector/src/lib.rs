//! Baton's projector: consumes the `BATON_HANDOFFS` stream (or, one of
//! several sharing the work, its partition of it) with a durable consumer, folds every hand-off and disruption event into the SLA views in sled, notices deadlines
//! passing with no event (a timer on the ordered deadline index), announces
//! each breach exactly once on `baton.sla.breached.…`, and serves the
//! `baton.v1.Query` service.
//!
//! Layout:
//! - [`config`]: flags and their environment twins.
//! - [`consumer`]: stream → views, position committed with the changes.
//! - [`receiver`]: stream → decoded batches, on a task of its own.
//! - [`timer`]: wakes at the next deadline and settles it.
//! - [`announcer`]: drains the outbox of breaches, corrections and warnings onto NATS.
//! - [`query`]: the `baton.v1.Query` gRPC service over these views.
//! - [`fanout`]: the same questions asked of every partition's projector, answers merged.
//! - [`relay`]: the signals these views hold, handed to watchers and the board.
//! - [`route`]: which of the two answers a query.
//! - [`metrics`]: Prometheus metrics on the HTTP side port.
//! - [`present`]: view types as `baton.v1` messages.
//! - [`board`]: the live SLA board (HTML pages and server-sent events) on the HTTP side port.
//! - [`watchdog`]: a part that stops making progress turns the projector unhealthy.
//! - [`server`]: wiring, the supervised tasks and shutdown.
//!
//! It must never be the record: the views are a cache of the stream, rebuilt
//! from it whenever they are missing or in doubt.

pub mod announcer;
pub mod board;
pub mod config;
pub mod fanout;
pub mod metrics;
pub mod pipeline;
pub mod present;
pub mod query;
pub mod relay;
pub mod route;
pub mod server;
pub mod timeline;
pub mod timer;
pub mod traces;
pub mod watchdog;

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc,
};

use baton_domain::Catalog;
use baton_runtime::failpoint::Failpoints;
use baton_views::{Projection, Views, ViewsError};
use tokio::sync::Notify;

pub use config::Config;

/// The gRPC service whose health the projector reports.
pub const QUERY_SERVICE: &str = "baton.v1.Query";

/// A batch being applied to sled; yields what its change returned.
type Landing<T> = tokio::task::JoinHandle<Result<T, ViewsError>>;

/// The name of the task applying a batch to sled, in errors.
const LANDING: &str = "views land";

/// A failpoint's error, as sled would report a failed write or read.
fn injected_io(e: baton_runtime::failpoint::Injected) -> ViewsError {
    // As text: sled shows an I/O error by its Debug form, in which the
    // failpoint's own words would be lost.
    ViewsError::Sled(sled::Error::Io(std::io::Error::other(e.to_string())))
}

/// A blocking task doing work on the views ended without an answer. That
/// is a bug in the work (or the runtime stopping), not damage to the views:
/// they stay as the last batch that landed left them, and are not rebuilt
/// over it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskGone {
    #[error("the {task} task panicked: {message}")]
    Panicked { task: &'static str, message: String },
    #[error("the {task} task was cancelled")]
    Cancelled { task: &'static str },
}

/// What became of the `task` whose join failed with `e`.
pub(crate) fn task_gone(task: &'static str) -> impl FnOnce(tokio::task::JoinError) -> TaskGone {
    move |e| {
        if e.is_panic() {
            TaskGone::Panicked {
                task,
                message: baton_runtime::supervise::panic_text(e),
            }
        } else {
            TaskGone::Cancelled { task }
        }
    }
}

/// Why work on the views, done on a blocking task, gave no answer: the
/// views failed (they are in doubt), or the task did (they are not).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Views(#[from] ViewsError),
    #[error(transparent)]
    Task(#[from] TaskGone),
}

pub use server::run;

/// What the projector's tasks share.
#[derive(Debug)]
pub struct Shared {
    pub views: Views,
    pub catalog: Arc<Catalog>,
    /// The share of the hand-offs these views hold (the whole stream unless partitioned).
    pub partition: baton_log::Partition,
    /// Older breaches are recorded but not announced.
    announce_horizon: std::time::Duration,
    /// Views of hand-offs closed longer than this are retired (`None`: never).
    views_retention: Option<std::time::Duration>,
    /// Most an event's `recorded_at` may differ from its message's time.
    max_recorded_skew: std::time::Duration,
    /// Held by whoever computes a batch of the views, so batches never interleave.
    writer: tokio::sync::Mutex<()>,
    /// Held while a batch is being applied to sled.
    landing: Arc<tokio::sync::Mutex<()>>,
    /// The consumer has applied everything the stream held when it last looked.
    caught_up: AtomicBool,
    /// Batches received but not yet staged: the stream is not caught up with.
    unstaged: AtomicU64,
    /// The views have caught up with the stream at least once since start:
    /// until then (a rebuild) they are incomplete, and nobody is served or paged.
    current: tokio::sync::watch::Sender<bool>,
    /// Events applied since start (for logs and tests).
    applied: AtomicU64,
    /// Messages parked on the dead-letter stream since start.
    dead_lettered: AtomicU64,
    /// The deadline index or the caught-up state changed: the timer looks again.
    deadlines_changed: Notify,
    /// New breaches wait in the outbox: the announcer looks again.
    outbox_ready: Notify,
    /// Bumped after every committed batch, so the board can refresh.
    changes: tokio::sync::watch::Sender<u64>,
    /// What `/metrics` serves.
    pub metrics: metrics::Metrics,
    /// Breaches, corrections, warnings and disruptions, as these views
    /// hold them, for watchers and the board.
    pub relay: relay::Relay,
    /// gRPC health and `/readyz`, faults included.
    pub health: baton_runtime::Health,
    /// Test-only failure injection (nothing in release builds).
    pub failpoints: Failpoints,
    /// Per hand-off, the trace context its signals continue.
    pub traces: traces::Traces,
    /// The first storage error anywhere: the views are in doubt, and the
    /// supervised `storage` task ends the process so they are checked (and
    /// rebuilt if damaged) at the next start.
    storage_failed: tokio::sync::watch::Sender<Option<ViewsError>>,
}

/// A received batch the views do not show yet (see
/// [`Shared::batch_received`]). Dropping it says the batch is staged, or will
/// never be: when none is left waiting the timer looks again, since it may
/// have slept while one was, and the caught-up flag, already set, will not
/// wake it.
#[must_use = "the batch counts as unstaged until this is dropped"]
pub(crate) struct Unstaged {
    shared: Arc<Shared>,
}

impl Drop for Unstaged {
    fn drop(&mut self) {
        if self.shared.unstaged.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.deadlines_changed.notify_one();
        }
    }
}

/// The health fault standing while NATS is not connected; its reason says
/// which server and what it answered (the health task sets it, refused
/// queries repeat it).
pub const NATS_FAULT: &str = "nats";

/// Why a long-running task of the projector ended (see
/// [`baton_runtime::supervise`]).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("the views failed: {0}")]
    Views(#[from] ViewsError),
    /// A storage error elsewhere (the first one) put the views in doubt.
    #[error("a storage error put the views in doubt: {0}")]
    Storage(#[source] ViewsError),
    #[error(transparent)]
    Task(#[from] TaskGone),
    #[error(transparent)]
    Injected(#[from] baton_runtime::failpoint::Injected),
    #[error("http side port: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] baton_log::LogError),
}

impl From<WorkError> for TaskError {
    fn from(e: WorkError) -> TaskError {
        match e {
            WorkError::Views(e) => TaskError::Views(e),
            WorkError::Task(e) => TaskError::Task(e),
        }
    }
}

impl Shared {
    pub fn new(
        views: Views,
        catalog: Arc<Catalog>,
        announce_horizon: std::time::Duration,
        partition: baton_log::Partition,
    ) -> Shared {
        Shared {
            views,
            catalog,
            partition,
            announce_horizon,
            views_retention: None,
            max_recorded_skew: config::DEFAULT_MAX_RECORDED_SKEW,
            writer: tokio::sync::Mutex::new(()),
            landing: Arc::default(),
            caught_up: AtomicBool::new(false),
            unstaged: AtomicU64::new(0),
            current: tokio::sync::watch::Sender::new(false),
            applied: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            deadlines_changed: Notify::new(),
            outbox_ready: Notify::new(),
            changes: tokio::sync::watch::Sender::new(0),
            metrics: metrics::Metrics::new(),
            relay: relay::Relay::default(),
            health: baton_runtime::Health::new(
                tonic_health::server::health_reporter().0,
                QUERY_SERVICE,
            ),
            failpoints: Failpoints::default(),
            traces: traces::Traces::default(),
            storage_failed: tokio::sync::watch::Sender::new(None),
        }
    }

    /// Retires the views of hand-offs closed longer than `retention` ago
    /// (zero: never).
    pub fn with_views_retention(mut self, retention: std::time::Duration) -> Shared {
        self.views_retention = (!retention.is_zero()).then_some(retention);
        self
    }

    /// Reports to `health` (the one the gRPC server serves).
    pub fn with_health(mut self, health: baton_runtime::Health) -> Shared {
        self.health = health;
        self
    }

    /// Failpoints to hit (tests only).
    pub fn with_failpoints(mut self, failpoints: Failpoints) -> Shared {
        self.failpoints = failpoints;
        self
    }

    /// Reads the views off the async threads (sled may block on I/O).
    /// A storage error is also reported with [`Shared::storage_error`]; a
    /// read that panicked is not one.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Views) -> Result<T, ViewsError> + Send + 'static,
    ) -> Result<T, WorkError> {
        let shared = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            shared
                .failpoints
                .hit_blocking("storage-read")
                .map_err(injected_io)?;
            read(&shared.views)
        })
        .await
        .map_err(task_gone("views read"))?;
        if let Err(e) = &result {
            self.storage_error(e);
        }
        Ok(result?)
    }

    /// A storage error: the views are in doubt. The first one is kept, and
    /// ends the process through the supervised `storage` task.
    pub fn storage_error(&self, error: &ViewsError) {
        self.storage_failed.send_if_modified(|failed| {
            if failed.is_some() {
                return false;
            }
            *failed = Some(error.clone());
            true
        });
    }

    /// Ends (with the error) once a storage error was reported; runs
    /// supervised until shutdown.
    pub async fn watch_storage(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), TaskError> {
        let mut failed = self.storage_failed.subscribe();
        tokio::select! {
            _ = shutdown.cancelled() => Ok(()),
            seen = failed.wait_for(Option::is_some) => match seen.ok().and_then(|c| c.clone()) {
                Some(cause) => Err(TaskError::Storage(cause)),
                // The sender lives in `self`: it cannot be gone while we wait.
                None => Ok(()),
            }
        }
    }

    /// Events whose `recorded_at` is further than `skew` from their
    /// message's time are parked, not applied (see [`Config::max_recorded_skew`]).
    pub fn with_max_recorded_skew(mut self, skew: std::time::Duration) -> Shared {
        self.max_recorded_skew = skew;
        self
    }

    /// The consumer has applied everything the stream held when it last
    /// looked, and no batch it has received waits to be staged: only then
    /// are passed deadlines settled.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) && self.unstaged.load(Ordering::Acquire) == 0
    }

    /// A batch has been received that the views do not show yet: no
    /// deadline is settled until the returned guard is dropped, which the
    /// pipeline does once the batch is staged, or when the batch is dropped
    /// unstaged (a failed receive, a receiver stopped with batches in its
    /// channel).
    fn batch_received(self: &Arc<Self>) -> Unstaged {
        self.unstaged.fetch_add(1, Ordering::AcqRel);
        Unstaged {
            shared: Arc::clone(self),
        }
    }

    /// The views have been complete at least once since start.
    pub fn is_current(&self) -> bool {
        *self.current.borrow()
    }

    /// Waits until the views are current.
    pub async fn wait_current(&self) {
        let mut current = self.current.subscribe();
        let _ = current.wait_for(|c| *c).await;
    }

    /// Fires after every committed batch (the value counts them).
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Messages on the events subjects that were not Baton events, parked
    /// on `baton.deadletter.<sequence>` since start (for logs and metrics).
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Runs `change` on a projection of the views, off the async threads,
    /// with the writer lock held, and commits it. A storage error is also
    /// reported with [`Shared::storage_error`].
    async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Projection<'_>) -> Result<T, ViewsError> + Send + 'static,
    ) -> Result<T, WorkError> {
        let written: Result<T, WorkError> = async {
            let landing = self.project(change).await?;
            Ok(landing.await.map_err(task_gone(LANDING))??)
        }
        .await;
        if let Err(WorkError::Views(e)) = &written {
            self.storage_error(e);
        }
        written
    }

    /// Runs `change` on a projection of the views, off the async threads,
    /// with the writer lock held, and starts applying it to sled. Returns
    /// once the batch is staged: the next one can be computed (reading this
    /// one as if applied) while sled writes this one. Await the returned
    /// task for it to be in the views; only then may its events be acked.
    async fn project<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Projection<'_>) -> Result<T, ViewsError> + Send + 'static,
    ) -> Result<Landing<T>, WorkError> {
        let _writer = self.writer.lock().await;
        let shared = self.clone();
        let (value, breached, sealed) = tokio::task::spawn_blocking(move || {
            shared
                .failpoints
                .hit_blocking("storage")
                .map_err(injected_io)?;
            let mut projection = Projection::new(&shared.views, &shared.catalog)?
                .with_announce_horizon(Some(shared.announce_horizon))
                .with_retention(shared.views_retention);
            let value = change(&mut projection)?;
            let breached = projection.newly_signalled();
            Ok::<_, ViewsError>((value, breached, projection.seal()?))
        })
        .await
        .map_err(task_gone("views write"))??;
        // Staged only once the batch before it is in the tree: at most one
        // batch is ever read through.
        let landing = self.landing.clone().lock_owned().await;
        if let Some(sealed) = &sealed {
            self.views.stage(sealed)?;
        }
        let shared = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let _landing = landing;
            if let Some(sealed) = sealed {
                shared.views.land(sealed)?;
            }
            if breached > 0 {
                shared.outbox_ready.notify_one();
            }
            shared.deadlines_changed.notify_one();
            shared.changes.send_modify(|n| *n = n.wrapping_add(1));
            Ok(value)
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_domain::Catalog;
    use baton_views::Views;
    use futures::FutureExt;

    use super::{Shared, TaskError, TaskGone, ViewsError, WorkError};

    fn shared(dir: &std::path::Path) -> Shared {
        let catalog = Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}], "kinds": ["repair"],
                "promises": []}"#,
        )
        .expect("catalog");
        let (views, _) = Views::open(dir, catalog.version()).expect("open views");
        Shared::new(
            views,
            Arc::new(catalog),
            std::time::Duration::from_secs(3600),
            baton_log::Partition::WHOLE,
        )
    }

    #[test]
    fn the_timer_is_woken_when_the_last_received_batch_is_staged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = Arc::new(shared(dir.path()));
        shared.caught_up.store(true, super::Ordering::Release);
        let first = shared.batch_received();
        let second = shared.batch_received();
        assert!(!shared.is_caught_up(), "two batches wait to be staged");

        drop(first);
        assert!(!shared.is_caught_up());
        assert!(
            shared.deadlines_changed.notified().now_or_never().is_none(),
            "one batch still waits: nothing for the timer yet"
        );

        drop(second);
        assert!(shared.is_caught_up());
        assert!(
            shared.deadlines_changed.notified().now_or_never().is_some(),
            "the timer must look again once nothing waits"
        );
    }

    #[tokio::test]
    async fn a_panicked_read_is_not_a_storage_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = Arc::new(shared(dir.path()));
        let read = shared
            .read(|_views| -> Result<(), ViewsError> { panic!("a bug in the read") })
            .await;
        match read {
            Err(WorkError::Task(TaskGone::Panicked { task, message })) => {
                assert_eq!(task, "views read");
                assert_eq!(message, "a bug in the read");
            }
            other => panic!("expected a panicked task, got {other:?}"),
        }
        assert!(
            shared.storage_failed.borrow().is_none(),
            "a panic must not put the views in doubt"
        );
        // Callers tell it apart from the views failing, and say so.
        let query = crate::query::QueryError::from(WorkError::Task(TaskGone::Cancelled {
            task: "views read",
        }));
        assert!(
            matches!(query, crate::query::QueryError::Task(_)),
            "{query}"
        );
    }

    #[tokio::test]
    async fn a_storage_error_ends_the_storage_task_with_the_error_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = Arc::new(shared(dir.path()));
        let injected = || ViewsError::Sled(sled::Error::Unsupported("injected".into()));
        let read = shared
            .read(move |_views| -> Result<(), ViewsError> { Err(injected()) })
            .await;
        assert!(matches!(read, Err(WorkError::Views(ViewsError::Sled(_)))));
        let ended = shared
            .clone()
            .watch_storage(tokio_util::sync::CancellationToken::new())
            .await;
        assert!(
            matches!(ended, Err(TaskError::Storage(ViewsError::Sled(_)))),
            "{ended:?}"
        );
    }
}
