//! The sled tree and its key scheme.
//!
//! One tree, so that one `apply_batch` covers every change an event causes
//! and the stream position that says it was applied:
//!
//! | key | value |
//! |---|---|
//! | `m/schema`, `m/catalog`, `m/position`, `m/stream-time`, `m/in-doubt` | store schema, catalog version, last applied stream sequence, latest stream time applied; why the views must be rebuilt, when they must |
//! | `h/<handoff>` | [`HandoffView`] |
//! | `b/<policy>/<handoff>/<cycle>` | [`BreachRecord`] |
//! | `a/<policy>/<hour:8 BE>/<supplier>/<customer>` | [`Tallies`] of the clocks that started in that hour |
//! | `p/<hour:8 BE>/<supplier>/<customer>` | [`PairTallies`] of the hand-offs requested in that hour |
//! | `r/<supplier>/<disruption>` | [`DisruptionView`] |
//! | `q/<supplier>/<requested_at:8 BE><handoff>` | empty: hand-offs by first supplier and request time, to flag disruptions |
//! | `o/<announced 1\|0>/<deadline:8 BE, newest first>/<policy>/<handoff>/<cycle>` | empty: open breaches, live ones apart from history never paged |
//! | `k/<supplier>/<customer>/<announced 1\|0>/<deadline:8 BE>/<policy>/<handoff>/<cycle>` | empty: each pair's breaches by deadline |
//! | `x/b/...`, `x/c/...`, `x/w/...` + `<policy>/<handoff>/<cycle>` | [`BreachRecord`] of a breach, a correction (the promise held after all) or a warning, waiting to be announced (outbox) |
//!
//! The timer's index of running deadlines is not stored: it is read off the
//! `h/` views (see [`crate::timers`]).
//!
//! Values are postcard-encoded domain types. sled may lose the last batches
//! on a crash but recovers a consistent prefix of them; since the position
//! is in the same batch, the projector then simply re-applies from there.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use baton_domain::{
    compliance::{Contribution, Tallies},
    disruption::Disruption,
    event::{Event, Priority},
    lifecycle::Handoff,
    Timestamp, Token,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{
    timers::{next_due, TimerChanges, Timers},
    ViewsError,
};

/// sled's page cache unless told otherwise: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Bumped whenever a stored type or key changes: older stores are rebuilt.
// 4: events carry `sent_by` (audit).
// 5: no `d/` deadline index in the tree (it is kept in memory).
// 6: events carry `backfill`; hand-offs keep their corrections; pairs count
//    late-entry corrections; breach records carry a correction's cause.
pub const SCHEMA_VERSION: u32 = 6;

const KEY_SCHEMA: &[u8] = b"m/schema";
const KEY_CATALOG: &[u8] = b"m/catalog";
const KEY_POSITION: &[u8] = b"m/position";
const KEY_STREAM_TIME: &[u8] = b"m/stream-time";
/// Set when the views are found at odds with the stream: the next open
/// discards them and they are rebuilt.
const KEY_IN_DOUBT: &[u8] = b"m/in-doubt";

/// Everything the views hold about one hand-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffView {
    pub handoff: Handoff,
    /// Every event in stream order.
    pub events: Vec<Event>,
    pub last_sequence: u64,
    /// What each of its clocks counts as in the compliance tallies.
    pub contributions: Vec<Contribution>,
    /// Deadlines of its running clocks: (policy, deadline). The timer's
    /// index is derived from these and `warnings`.
    pub deadlines: Vec<(Token, Timestamp)>,
    /// Warnings of its running clocks not yet due: (policy, warning).
    pub warnings: Vec<(Token, Timestamp)>,
    /// Clock cycles that are breached (a `b/` record exists).
    pub breached: Vec<(Token, u32)>,
    /// Clock cycles whose warning was recorded (announced at most once).
    pub warned: Vec<(Token, u32)>,
    /// What the hand-off counts as in the pair tallies (volume, rating...).
    pub pair: Option<PairContribution>,
    /// Disruptions it was requested into, and whether a clock of it broke
    /// before that disruption was announced.
    pub disruptions: Vec<(Token, bool)>,
    /// Announced breaches a later event withdrew, oldest first.
    pub corrections: Vec<Correction>,
}

/// An announced breach withdrawn by a later event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub policy_id: Token,
    pub cycle: u32,
    /// The deadline the withdrawn breach had.
    pub deadline: Timestamp,
    /// Stream time when it was withdrawn.
    pub corrected_at: Timestamp,
    pub cause: Cause,
}

/// The event whose arrival changed what the views had announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub event_id: String,
    pub event_type: baton_domain::EventType,
    /// The caller that sent it (empty without authentication).
    pub sent_by: String,
    /// `recorded_at - occurred_at` of that event.
    pub entry_lag: std::time::Duration,
    /// Sent from the measured supplier's side: its own late entry kept the
    /// promise it had been announced to break.
    pub by_supplier: bool,
}

impl Cause {
    pub fn of(event: &Event) -> Cause {
        Cause {
            event_id: event.event_id.clone(),
            event_type: event.event_type,
            sent_by: event.sent_by.clone(),
            entry_lag: event.entry_lag().unwrap_or_default(),
            by_supplier: baton_domain::access::side_of(event.event_type)
                == baton_domain::access::Side::Supplier,
        }
    }
}

impl HandoffView {
    /// The supplier it was first requested from (disruptions are by supplier).
    pub fn first_supplier(&self) -> &Token {
        self.events
            .first()
            .and_then(|e| e.supplier.as_ref())
            .unwrap_or(&self.handoff.supplier)
    }
}

/// One hand-off's share of its pair's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairContribution {
    pub supplier: Token,
    pub customer: Token,
    /// Start of the hour it was requested in.
    pub bucket: Timestamp,
    pub rejected: bool,
    pub disrupted: bool,
    pub rating: Option<u8>,
    /// Its corrections caused by the supplier's own late entries.
    pub late_entry_corrections: u32,
}

/// Volume, rejections, disruptions and ratings of a supplier x customer pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairTallies {
    pub handoffs: u64,
    pub rejected: u64,
    /// Requested into an active disruption of the supplier.
    pub disrupted: u64,
    pub ratings: u64,
    pub rating_sum: u64,
    /// Announced breaches withdrawn by the supplier's own late entries.
    pub late_entry_corrections: u64,
}

impl PairTallies {
    pub fn add(&mut self, c: &PairContribution) {
        self.handoffs += 1;
        self.rejected += u64::from(c.rejected);
        self.disrupted += u64::from(c.disrupted);
        if let Some(r) = c.rating {
            self.ratings += 1;
            self.rating_sum += u64::from(r);
        }
        self.late_entry_corrections += u64::from(c.late_entry_corrections);
    }

    pub fn remove(&mut self, c: &PairContribution) {
        self.handoffs = self.handoffs.saturating_sub(1);
        self.rejected = self.rejected.saturating_sub(u64::from(c.rejected));
        self.disrupted = self.disrupted.saturating_sub(u64::from(c.disrupted));
        if let Some(r) = c.rating {
            self.ratings = self.ratings.saturating_sub(1);
            self.rating_sum = self.rating_sum.saturating_sub(u64::from(r));
        }
        self.late_entry_corrections = self
            .late_entry_corrections
            .saturating_sub(u64::from(c.late_entry_corrections));
    }

    pub fn merge(&mut self, other: &PairTallies) {
        self.handoffs += other.handoffs;
        self.rejected += other.rejected;
        self.disrupted += other.disrupted;
        self.ratings += other.ratings;
        self.rating_sum += other.rating_sum;
        self.late_entry_corrections += other.late_entry_corrections;
    }

    /// Mean rating, if any was given.
    pub fn rating(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_sum as f64 / self.ratings as f64)
    }
}

/// A disruption and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisruptionView {
    pub disruption: Disruption,
    pub last_sequence: u64,
    /// Hand-offs requested into it.
    pub affected: u64,
    /// Of those, hand-offs with a promise that broke before the disruption
    /// was announced: it was announced too late to warn their customers.
    pub failed_before_announcement: u64,
}

/// A broken promise, as listed and announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachRecord {
    pub handoff_id: Token,
    pub policy_id: Token,
    pub kind: Token,
    pub supplier: Token,
    pub customer: Token,
    pub priority: Priority,
    /// When the target ran out; by event time also when it broke.
    pub deadline: Timestamp,
    /// When the stop event came; `None` while still waiting for it.
    pub stopped_at: Option<Timestamp>,
    /// Announced on NATS (false for a backfilled breach, older than the
    /// announce horizon when it was recorded: in the figures, paging nobody).
    pub announce: bool,
    /// Which cycle of the promise's clock (1 unless a reset restarted it).
    pub cycle: u32,
    pub target: std::time::Duration,
    /// Time on the clock at the stop event; `None` while still open.
    pub elapsed: Option<std::time::Duration>,
    /// When the clock crossed its warning share, if the promise warns.
    pub warn_at: Option<Timestamp>,
    /// Also announced to this escalation target.
    pub escalate_to: Option<Token>,
    /// On a correction: the event that withdrew the breach.
    pub cause: Option<Cause>,
}

impl BreachRecord {
    /// How far past the target: by the clock at the stop, or by `now`
    /// (wall time since the deadline) while still open.
    pub fn overrun(&self, now: Timestamp) -> std::time::Duration {
        match self.elapsed {
            Some(elapsed) => elapsed.saturating_sub(self.target),
            None => now.since(self.deadline),
        }
    }
}

/// How the store was found on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Empty: build from the start of the stream.
    Empty,
    /// Views up to this stream sequence; continue after it.
    Resumed(u64),
    /// The views were discarded (the reason says why): rebuild from the start.
    Discarded(String),
}

/// A raw key and value, as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The views' sled store.
#[derive(Debug, Clone)]
pub struct Views {
    db: sled::Db,
    staging: Arc<Staging>,
}

/// Changes, in key order: a value to store, or `None` to delete.
type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A batch handed to sled but maybe not applied yet, which the next batch
/// reads through (see [`Sealed`]).
#[derive(Debug)]
struct Staged {
    id: u64,
    changes: Changes,
    /// Its changes to the timer's index.
    timers: TimerChanges,
}

#[derive(Debug, Default)]
struct Staging {
    current: std::sync::Mutex<Option<Arc<Staged>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// The last staged batch sled failed to apply: batches read through it
    /// must not be applied either.
    failed: std::sync::Mutex<Option<u64>>,
    /// The timer's index as of the tree and the staged batch; `None` after a
    /// batch failed to land, until it is read off the tree again.
    timers: std::sync::Mutex<Option<Timers>>,
}

/// A batch's changes, complete and ready for sled, that can be applied on
/// another thread while the next batch is being computed: stage it with
/// [`Views::stage`] (after the batch before it has landed), then
/// [`Views::land`] it. Until it lands, new batches read it as if applied.
#[derive(Debug)]
pub struct Sealed {
    staged: Arc<Staged>,
    /// The staged batch this one read through, if any.
    base: Option<u64>,
}

impl Sealed {
    /// Changes it carries (metadata included).
    pub fn len(&self) -> usize {
        self.staged.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.staged.changes.is_empty()
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding our own plain data types into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Locks `mutex`, whose holders never leave it half-updated (each sets one
/// field), so a panic elsewhere does not poison it for good.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, ViewsError> {
    postcard::from_bytes(bytes).map_err(|e| ViewsError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

const HANDOFF_PREFIX: &[u8] = b"h/";

/// The parts of a key, in one allocation (the keys of every event are
/// built this way: `format!` cost more than the rest of an event's fold).
fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

fn bytes(token: &Token) -> &[u8] {
    token.as_str().as_bytes()
}

pub(crate) fn handoff_key(handoff: &Token) -> Vec<u8> {
    join(&[HANDOFF_PREFIX, bytes(handoff)])
}

pub(crate) fn breach_key(policy: &Token, handoff: &Token, cycle: u32) -> Vec<u8> {
    format!("b/{policy}/{handoff}/{cycle}").into_bytes()
}

/// The open-breach index: `o/<announced: 1|0>/<deadline, newest first>/<policy>/<handoff>/<cycle>`,
/// for an open breach (`None` for a closed one). Announced breaches list
/// apart from history that was recorded but never paged.
pub(crate) fn open_breach_key(r: &BreachRecord) -> Option<Vec<u8>> {
    r.stopped_at.is_none().then(|| {
        join(&[
            OPEN_BREACH_PREFIX,
            if r.announce { b"1/" } else { b"0/" },
            &newest_first(r.deadline),
            b"/",
            bytes(&r.policy_id),
            b"/",
            bytes(&r.handoff_id),
            b"/",
            r.cycle.to_string().as_bytes(),
        ])
    })
}

/// The pair index of breaches: `k/<supplier>/<customer>/<announced>/<deadline>/<policy>/<handoff>/<cycle>`,
/// to find a pair's breaches in a window without reading all of them.
pub(crate) fn pair_breach_key(r: &BreachRecord) -> Option<Vec<u8>> {
    Some(join(&[
        &pair_breach_prefix(&r.supplier, &r.customer, r.announce),
        &instant_bytes(r.deadline),
        b"/",
        bytes(&r.policy_id),
        b"/",
        bytes(&r.handoff_id),
        b"/",
        r.cycle.to_string().as_bytes(),
    ]))
}

pub(crate) const OPEN_BREACH_PREFIX: &[u8] = b"o/";

pub(crate) fn pair_breach_prefix(supplier: &Token, customer: &Token, announced: bool) -> Vec<u8> {
    join(&[
        b"k/",
        bytes(supplier),
        b"/",
        bytes(customer),
        b"/",
        if announced { b"1/" } else { b"0/" },
    ])
}

/// Orders instants newest first as bytes.
pub(crate) fn newest_first(at: Timestamp) -> [u8; 8] {
    (!((at.0 as u64) ^ (1 << 63))).to_be_bytes()
}

/// What an outbox entry announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A promise broke.
    Breach,
    /// A promise announced broken held after all (a late event).
    Correction,
    /// A running clock crossed its warning share of the target.
    Warning,
}

impl Signal {
    fn tag(self) -> char {
        match self {
            Signal::Breach => 'b',
            Signal::Correction => 'c',
            Signal::Warning => 'w',
        }
    }

    pub(crate) fn from_outbox_key(key: &[u8]) -> Signal {
        match key.get(2) {
            Some(b'c') => Signal::Correction,
            Some(b'w') => Signal::Warning,
            _ => Signal::Breach,
        }
    }
}

pub(crate) fn outbox_key(signal: Signal, policy: &Token, handoff: &Token, cycle: u32) -> Vec<u8> {
    format!("x/{}/{policy}/{handoff}/{cycle}", signal.tag()).into_bytes()
}

pub(crate) fn pair_key(c: &PairContribution) -> Vec<u8> {
    join(&[
        b"p/",
        &instant_bytes(c.bucket),
        b"/",
        bytes(&c.supplier),
        b"/",
        bytes(&c.customer),
    ])
}

pub(crate) fn disruption_prefix(supplier: &Token) -> Vec<u8> {
    format!("r/{supplier}/").into_bytes()
}

pub(crate) fn disruption_key(supplier: &Token, disruption: &Token) -> Vec<u8> {
    format!("r/{supplier}/{disruption}").into_bytes()
}

pub(crate) fn requested_key(supplier: &Token, at: Timestamp, handoff: &Token) -> Vec<u8> {
    join(&[
        b"q/",
        bytes(supplier),
        b"/",
        &instant_bytes(at),
        bytes(handoff),
    ])
}

/// Orders signed instants correctly as bytes.
pub(crate) fn instant_bytes(at: Timestamp) -> [u8; 8] {
    ((at.0 as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn instant_from_bytes(bytes: &[u8]) -> Option<Timestamp> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(Timestamp((u64::from_be_bytes(raw) ^ (1 << 63)) as i64))
}

pub(crate) fn tally_prefix(policy: &Token) -> Vec<u8> {
    join(&[b"a/", bytes(policy), b"/"])
}

pub(crate) fn tally_key(c: &Contribution) -> Vec<u8> {
    join(&[
        b"a/",
        bytes(&c.policy_id),
        b"/",
        &instant_bytes(c.bucket),
        b"/",
        bytes(&c.supplier),
        b"/",
        bytes(&c.customer),
    ])
}

impl Views {
    /// Opens the store in `dir` for views computed under `catalog_version`.
    ///
    /// A store that sled cannot open, or that another schema or catalog
    /// wrote, is discarded: the caller then rebuilds from the stream.
    pub fn open(dir: &Path, catalog_version: &str) -> Result<(Views, Opened), ViewsError> {
        Views::open_with_cache(dir, catalog_version, DEFAULT_CACHE_BYTES)
    }

    /// As [`Views::open`], with sled's page cache bounded to `cache_bytes`
    /// (sled's own default is 1 GiB, which then dominates the projector's
    /// memory; the views' hot part is the running clocks').
    pub fn open_with_cache(
        dir: &Path,
        catalog_version: &str,
        cache_bytes: u64,
    ) -> Result<(Views, Opened), ViewsError> {
        let open = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()
        };
        let (db, mut opened) = match open() {
            Ok(db) => (db, None),
            // An I/O error (another process holds the store's lock, no
            // permission) says nothing about the views: refuse to start
            // rather than delete a store someone else is using.
            Err(e @ sled::Error::Io(_)) => return Err(ViewsError::Sled(e)),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "views unreadable, discarding them");
                (
                    Self::wipe(None, dir, cache_bytes)?,
                    Some(format!("the store could not be opened: {e}")),
                )
            }
        };
        let mut db = db;
        let mut timers = Timers::default();
        if opened.is_none() && !db.is_empty() {
            match Views::over(db.clone()).doubt(catalog_version) {
                Ok(found) => timers = found,
                Err(reason) => {
                    opened = Some(reason);
                    // sled may open a damaged file and fail only on reading
                    // it, clearing included: start from an empty directory.
                    db = Self::wipe(Some(db), dir, cache_bytes)?;
                }
            }
        }
        let views = Views::over(db);
        *lock(&views.staging.timers) = Some(timers);
        let opened = match (opened, views.position()?) {
            (Some(reason), _) => Opened::Discarded(reason),
            (None, 0) => Opened::Empty,
            (None, position) => Opened::Resumed(position),
        };
        views.db.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        views.db.insert(KEY_CATALOG, catalog_version.as_bytes())?;
        views.db.flush()?;
        Ok((views, opened))
    }

    /// Marks the views in doubt (`reason` says why), durably: the next
    /// [`Views::open`] discards them, so they are rebuilt from the stream.
    pub fn mark_in_doubt(&self, reason: &str) -> Result<(), ViewsError> {
        self.db.insert(KEY_IN_DOUBT, reason.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    fn over(db: sled::Db) -> Views {
        Views {
            db,
            staging: Arc::default(),
        }
    }

    fn staged(&self) -> Option<Arc<Staged>> {
        lock(&self.staging.current).clone()
    }

    /// Makes `sealed` the batch every new one reads through. Call once the
    /// batch staged before it has landed (or failed to).
    pub fn stage(&self, sealed: &Sealed) -> Result<(), ViewsError> {
        if sealed.base.is_some() && sealed.base == *lock(&self.staging.failed) {
            return Err(ViewsError::Corrupt {
                key: "(batch)".into(),
                reason: "computed over a batch that failed to apply".into(),
            });
        }
        let mut current = lock(&self.staging.current);
        if let Some(timers) = lock(&self.staging.timers).as_mut() {
            timers.apply(&sealed.staged.timers);
        }
        *current = Some(sealed.staged.clone());
        Ok(())
    }

    /// Runs `read` on the timer's index as of the tree and the staged
    /// batch, reading it off the tree first if a batch failed to land.
    pub(crate) fn with_timers<R>(&self, read: impl FnOnce(&Timers) -> R) -> Result<R, ViewsError> {
        let current = lock(&self.staging.current);
        let mut timers = lock(&self.staging.timers);
        if timers.is_none() {
            let mut found = self.timers_in_tree()?;
            if let Some(staged) = current.as_ref() {
                found.apply(&staged.timers);
            }
            tracing::info!(
                hand_offs = found.len(),
                "timer index read off the views again"
            );
            *timers = Some(found);
        }
        Ok(match timers.as_ref() {
            Some(timers) => read(timers),
            None => read(&Timers::default()),
        })
    }

    /// The timer's index as the tree's hand-off views list it.
    fn timers_in_tree(&self) -> Result<Timers, ViewsError> {
        let mut timers = Timers::default();
        for entry in self.db.scan_prefix(HANDOFF_PREFIX) {
            let (key, value) = entry?;
            let view: HandoffView = decode(&key, &value)?;
            if let Some(at) = next_due(&view.deadlines, &view.warnings) {
                timers.insert(at, view.handoff.handoff_id);
            }
        }
        Ok(timers)
    }

    /// The earliest running deadline or warning, if any.
    pub fn next_deadline(&self) -> Result<Option<Timestamp>, ViewsError> {
        self.with_timers(Timers::next)
    }

    /// As a batch that failed to land leaves the timer's index.
    #[cfg(test)]
    pub(crate) fn forget_timers(&self) {
        *lock(&self.staging.timers) = None;
    }

    /// The timer's index as it stands, for comparing.
    #[cfg(test)]
    pub(crate) fn timers(&self) -> Timers {
        self.with_timers(Timers::clone).unwrap_or_default()
    }

    /// The timer's index read off the tree (and the staged batch) anew.
    #[cfg(test)]
    pub(crate) fn timers_read_anew(&self) -> Timers {
        self.forget_timers();
        self.timers()
    }

    /// Applies a staged batch atomically; blocking (sled writes).
    pub fn land(&self, sealed: Sealed) -> Result<(), ViewsError> {
        self.land_with(sealed, |batch| self.db.apply_batch(batch))
    }

    /// [`Views::land`], with `apply` doing sled's part.
    fn land_with(
        &self,
        sealed: Sealed,
        apply: impl FnOnce(sled::Batch) -> sled::Result<()>,
    ) -> Result<(), ViewsError> {
        let mut batch = sled::Batch::default();
        for (key, value) in &sealed.staged.changes {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        let mut landing = Landing {
            views: self,
            staged: &sealed.staged,
            landed: false,
        };
        apply(batch)?;
        landing.landed = true;
        Ok(())
    }

    /// Closes `db` (if open), deletes the directory and opens it anew, empty.
    fn wipe(db: Option<sled::Db>, dir: &Path, cache_bytes: u64) -> Result<sled::Db, ViewsError> {
        drop(db);
        let reset = |source| ViewsError::Reset {
            path: dir.display().to_string(),
            source: Arc::new(source),
        };
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(reset(e)),
        }
        Ok(sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()?)
    }

    /// The timer's index if the stored views can be trusted; why not if
    /// they cannot.
    fn doubt(&self, catalog_version: &str) -> Result<Timers, String> {
        if let Ok(Some(reason)) = self.db.get(KEY_IN_DOUBT) {
            return Err(format!(
                "they were marked in doubt: {}",
                String::from_utf8_lossy(&reason)
            ));
        }
        let schema = self
            .db
            .get(KEY_SCHEMA)
            .map_err(|e| format!("the store is damaged: {e}"))?;
        if schema.as_deref() != Some(&SCHEMA_VERSION.to_be_bytes()[..]) {
            return Err("the store was written by another version of Baton".into());
        }
        let catalog = self.db.get(KEY_CATALOG).ok().flatten();
        if catalog.as_deref() != Some(catalog_version.as_bytes()) {
            return Err(format!(
                "the views were computed under catalog {}, not {catalog_version}",
                catalog
                    .map(|c| String::from_utf8_lossy(&c).into_owned())
                    .unwrap_or_else(|| "(none)".into())
            ));
        }
        self.check_integrity()
            .map_err(|e| format!("the store is damaged: {e}"))
    }

    /// Reads every stored value once, so that a damaged store is found at
    /// start, not in the middle of a query; the timer's index is read off
    /// the hand-off views on the way.
    fn check_integrity(&self) -> Result<Timers, ViewsError> {
        let mut timers = Timers::default();
        for entry in self.db.iter() {
            let (key, value) = entry?;
            match key.first() {
                Some(b'h') => {
                    let view = decode::<HandoffView>(&key, &value)?;
                    if let Some(at) = next_due(&view.deadlines, &view.warnings) {
                        timers.insert(at, view.handoff.handoff_id);
                    }
                }
                Some(b'b') | Some(b'x') => {
                    decode::<BreachRecord>(&key, &value)?;
                }
                Some(b'a') => {
                    decode::<Tallies>(&key, &value)?;
                }
                Some(b'p') => {
                    decode::<PairTallies>(&key, &value)?;
                }
                Some(b'r') => {
                    decode::<DisruptionView>(&key, &value)?;
                }
                _ => {}
            }
        }
        Ok(timers)
    }

    pub(crate) fn tree(&self) -> &sled::Db {
        &self.db
    }

    /// Last stream sequence whose event is in the views (0: none).
    pub fn position(&self) -> Result<u64, ViewsError> {
        Ok(self
            .db
            .get(KEY_POSITION)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Latest `recorded_at` among applied events: how far the log has told
    /// the views about the world.
    pub fn stream_time(&self) -> Result<Timestamp, ViewsError> {
        Ok(self
            .db
            .get(KEY_STREAM_TIME)?
            .and_then(|v| v.as_ref().try_into().ok().map(i64::from_be_bytes))
            .map(Timestamp)
            .unwrap_or(Timestamp(i64::MIN)))
    }

    /// Writes buffered changes to disk.
    pub fn flush(&self) -> Result<(), ViewsError> {
        self.db.flush()?;
        Ok(())
    }

    /// Every view entry but the metadata, in key order: two stores with the
    /// same dump show the same figures.
    pub fn dump(&self) -> Result<Vec<Entry>, ViewsError> {
        let mut out = Vec::new();
        for entry in self.db.iter() {
            let (key, value) = entry?;
            if !key.starts_with(b"m/") {
                out.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(out)
    }
}

/// A staged batch being applied. However that ends (applied, refused by
/// sled, or a panic in between) it is no longer the batch new ones read
/// through; unless it was applied it counts as failed, so a batch computed
/// over it is refused at [`Views::stage`] rather than landing without it.
struct Landing<'a> {
    views: &'a Views,
    staged: &'a Arc<Staged>,
    landed: bool,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let staging = &self.views.staging;
        if !self.landed {
            *lock(&staging.failed) = Some(self.staged.id);
            // The index has this batch's changes, the tree has not.
            *lock(&staging.timers) = None;
        }
        let mut current = lock(&staging.current);
        if current
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, self.staged))
        {
            *current = None;
        }
    }
}

/// Pending changes with read-your-writes, applied atomically by [`Batch::commit`].
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    views: &'a Views,
    /// The batch being applied meanwhile, read as if it had been.
    staged: Option<Arc<Staged>>,
    changes: Changes,
    /// Its changes to the timer's index. The batch reads them over the
    /// index as it was when the batch began: one batch is computed at a
    /// time, and the next is staged only after this one.
    timers: TimerChanges,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(views: &'a Views) -> Batch<'a> {
        Batch {
            views,
            staged: views.staged(),
            changes: BTreeMap::new(),
            timers: TimerChanges::default(),
        }
    }

    /// `handoff`, which fell due at `before` as this batch found it, now
    /// falls due at `after` (`None`: no clock of it runs).
    pub(crate) fn set_due(
        &mut self,
        handoff: &Token,
        before: Option<Timestamp>,
        after: Option<Timestamp>,
    ) {
        self.timers.set(handoff, before, after);
    }

    /// Hand-offs whose clocks fall due before `now`, earliest first, each
    /// handed out once: the caller settles them all, then says
    /// [`Batch::due_settled`].
    pub(crate) fn due_before(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<(Timestamp, Token)>, ViewsError> {
        let views = self.views;
        let changes = &mut self.timers;
        views.with_timers(|index| changes.due_before(index, now))
    }

    pub(crate) fn due_settled(&mut self) {
        self.timers.settled();
    }

    pub(crate) fn views(&self) -> &'a Views {
        self.views
    }

    /// What is stored under `key` as this batch reads it: its own changes,
    /// then the staged batch's, then the tree.
    fn lookup(&self, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.changes.get(key).map(Option::as_ref).or_else(|| {
            self.staged
                .as_ref()
                .and_then(|s| s.changes.get(key).map(Option::as_ref))
        })
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ViewsError> {
        let bytes = match self.lookup(key) {
            Some(Some(bytes)) => return decode(key, bytes).map(Some),
            Some(None) => return Ok(None),
            None => self.views.db.get(key)?,
        };
        bytes.map(|b| decode(key, &b)).transpose()
    }

    /// The raw value under `key`, as [`Batch::get`] reads it.
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewsError> {
        Ok(match self.lookup(key) {
            Some(value) => value.cloned(),
            None => self.views.db.get(key)?.map(|v| v.to_vec()),
        })
    }

    pub(crate) fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.changes.insert(key, Some(encode(value)));
    }

    pub(crate) fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Keys in `[start, end)`, committed or pending, without pending deletions.
    pub(crate) fn keys_in(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>, ViewsError> {
        let mut keys = std::collections::BTreeSet::new();
        for key in self.views.db.range(start..end).keys() {
            keys.insert(key?.to_vec());
        }
        let range = start.to_vec()..end.to_vec();
        let staged = self
            .staged
            .iter()
            .flat_map(|s| s.changes.range(range.clone()));
        for (key, value) in staged.chain(self.changes.range(range.clone())) {
            if value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Every change, with the new position (if given) and stream time, as
    /// one batch for [`Views::stage`] and [`Views::land`].
    pub(crate) fn seal(mut self, position: Option<u64>, stream_time: Timestamp) -> Sealed {
        if let Some(position) = position {
            self.put_raw(KEY_POSITION.to_vec(), position.to_be_bytes().to_vec());
        }
        self.put_raw(
            KEY_STREAM_TIME.to_vec(),
            stream_time.0.to_be_bytes().to_vec(),
        );
        Sealed {
            staged: Arc::new(Staged {
                id: self
                    .views
                    .staging
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                changes: self.changes,
                timers: self.timers,
            }),
            base: self.staged.map(|s| s.id),
        }
    }

    /// The stream time as this batch reads it.
    pub(crate) fn stream_time(&self) -> Result<Timestamp, ViewsError> {
        Ok(self
            .get_raw(KEY_STREAM_TIME)?
            .and_then(|v| v.as_slice().try_into().ok().map(i64::from_be_bytes))
            .map(Timestamp)
            .unwrap_or(Timestamp(i64::MIN)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_as_the_schema_says() {
        // Built by hand for speed: byte for byte the layout in the table
        // above, which stores of this schema version hold.
        let t = |s: &str| Token::parse(s).expect("token");
        let (h, p, s, c) = (t("h-1"), t("lab-stat"), t("lab"), t("ward-5"));
        let at = Timestamp(1_700_000_000_000);
        let with_instant = |head: &str, tail: &str| {
            let mut key = head.as_bytes().to_vec();
            key.extend_from_slice(&instant_bytes(at));
            key.extend_from_slice(tail.as_bytes());
            key
        };
        assert_eq!(handoff_key(&h), b"h/h-1".to_vec());
        assert_eq!(requested_key(&s, at, &h), with_instant("q/lab/", "h-1"));
        assert_eq!(tally_prefix(&p), b"a/lab-stat/".to_vec());
        let contribution = Contribution {
            policy_id: p.clone(),
            supplier: s.clone(),
            customer: c.clone(),
            bucket: at,
            tally: baton_domain::compliance::Tally::Met,
            duration: None,
            rejected: false,
            warned: false,
        };
        assert_eq!(
            tally_key(&contribution),
            with_instant("a/lab-stat/", "/lab/ward-5")
        );
        let pair = PairContribution {
            supplier: s,
            customer: c,
            bucket: at,
            rejected: false,
            disrupted: false,
            rating: None,
            late_entry_corrections: 0,
        };
        assert_eq!(pair_key(&pair), with_instant("p/", "/lab/ward-5"));
    }

    fn stored(views: &Views, key: &[u8]) -> bool {
        views.db.get(key).expect("read").is_some()
    }

    fn commit(batch: Batch<'_>, position: u64) {
        let views = batch.views();
        let sealed = batch.seal(Some(position), Timestamp(position as i64));
        views.stage(&sealed).expect("stage");
        views.land(sealed).expect("land");
    }

    #[test]
    fn a_batch_reads_through_the_one_still_being_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, _) = Views::open(dir.path(), "v1").expect("open");
        let mut first = Batch::new(&views);
        first.put_raw(b"q/1-kept".to_vec(), vec![1]);
        first.put_raw(b"q/2-gone".to_vec(), vec![2]);
        commit(first, 1);

        // Staged, not landed: the tree does not have it yet.
        let mut second = Batch::new(&views);
        second.delete(b"q/2-gone".to_vec());
        second.put_raw(b"q/0-new".to_vec(), vec![3]);
        let second = second.seal(Some(2), Timestamp(2));
        views.stage(&second).expect("stage");
        assert!(!stored(&views, b"q/0-new") && stored(&views, b"q/2-gone"));

        let mut third = Batch::new(&views);
        assert_eq!(third.get_raw(b"q/0-new").expect("read"), Some(vec![3]));
        assert_eq!(third.get_raw(b"q/2-gone").expect("read"), None);
        assert_eq!(third.stream_time().expect("read"), Timestamp(2));
        assert_eq!(
            third.keys_in(b"q/", b"q0").expect("keys"),
            vec![b"q/0-new".to_vec(), b"q/1-kept".to_vec()]
        );
        third.delete(b"q/0-new".to_vec());
        let third = third.seal(Some(3), Timestamp(3));

        views.land(second).expect("land");
        views.stage(&third).expect("stage");
        views.land(third).expect("land");
        assert!(stored(&views, b"q/1-kept"));
        assert!(!stored(&views, b"q/0-new") && !stored(&views, b"q/2-gone"));
        assert_eq!(views.position().expect("position"), 3);
        assert!(views.staged().is_none(), "nothing staged once all landed");
    }

    #[test]
    fn a_batch_read_through_one_that_panicked_while_landing_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, _) = Views::open(dir.path(), "v1").expect("open");
        let mut first = Batch::new(&views);
        first.put_raw(b"q/1".to_vec(), vec![1]);
        let first = first.seal(Some(1), Timestamp(1));
        views.stage(&first).expect("stage");
        let second = Batch::new(&views).seal(Some(2), Timestamp(2));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            views.land_with(first, |_| panic!("sled panicked while applying"))
        }));
        assert!(panicked.is_err());
        assert!(!stored(&views, b"q/1"));
        assert!(
            views.stage(&second).is_err(),
            "a batch computed over one that never landed must not land"
        );
        assert_eq!(views.position().expect("position"), 0);
    }

    #[test]
    fn a_batch_read_through_one_that_failed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, _) = Views::open(dir.path(), "v1").expect("open");
        let mut first = Batch::new(&views);
        first.put_raw(b"q/1".to_vec(), vec![1]);
        let first = first.seal(Some(1), Timestamp(1));
        views.stage(&first).expect("stage");
        let second = Batch::new(&views).seal(Some(2), Timestamp(2));
        // As Views::land records a failed apply.
        *lock(&views.staging.failed) = Some(first.staged.id);
        *lock(&views.staging.current) = None;
        assert!(views.stage(&second).is_err());
        // A batch begun afterwards reads the tree alone and may land.
        let third = Batch::new(&views).seal(Some(1), Timestamp(1));
        views.stage(&third).expect("stage");
        views.land(third).expect("land");
        assert_eq!(views.position().expect("position"), 1);
    }
}
