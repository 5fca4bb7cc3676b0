//! The sled tree: opening it (and discarding it when it is in doubt), the
//! integrity check at open, and atomic batches with read-your-writes,
//! staged so the next batch is computed while sled applies this one.
//!
//! Keys are [`crate::keys`]'s and values [`crate::codec`]'s; this module
//! only moves bytes between batches and the tree. The timer's index of
//! running deadlines is not stored: it is read off the `h/` views (see
//! `timers`).
//!
//! sled may lose the last batches on a crash but recovers a consistent
//! prefix of them; since the position is in the same batch, the projector
//! then simply re-applies from there.
//!
//! It must never decide what a view holds (that is the projection's), and
//! never let a batch land that was computed over one that did not.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use baton_domain::{compliance::Tallies, Timestamp, Token};
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    codec,
    keys::{Key, KeyKind, Meta, Prefix},
    timers::{earliest_deadline, next_due, TimerChanges, Timers},
    view::{BreachRecord, DisruptionView, HandoffView, PairTallies},
    ViewsError,
};

/// sled's page cache unless told otherwise: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Bumped whenever a stored type or key changes: older stores are rebuilt.
// 4: events carry `sent_by` (audit).
// 5: no `d/` deadline index in the tree (it is kept in memory).
// 6: events carry `backfill`; hand-offs keep their corrections; pairs count
//    late-entry corrections; breach records carry a correction's cause.
// 7: a hand-off's events are stored as recorded events: the event, then its
//    envelope (version, recorded_at, sent_by, backfill).
// 8: breaches name their acknowledgement.
// 9: a hand-off keeps its events as its clocks read them and only the
//    request attributes promises match on or lists show; its running
//    clocks carry what the lists show of them.
pub const SCHEMA_VERSION: u32 = 9;

/// How the store was found on open.
#[derive(Debug, Clone)]
pub enum Opened {
    /// Empty: build from the start of the stream.
    Empty,
    /// Views up to this stream sequence; continue after it.
    Resumed(u64),
    /// The views were discarded: rebuild from the start.
    Discarded(Discarded),
}

/// Why the views found on open were discarded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Discarded {
    #[error("the store could not be opened: {0}")]
    Unopenable(#[source] sled::Error),
    /// Marked by [`Views::mark_in_doubt`], for the reason it was given.
    #[error("they were marked in doubt: {0}")]
    MarkedInDoubt(String),
    #[error("the store was written by another version of Baton")]
    OtherSchema { found: Option<u32> },
    #[error(
        "the views were computed under catalog {}, not {wanted}",
        found.as_deref().unwrap_or("(none)")
    )]
    OtherCatalog {
        found: Option<String>,
        wanted: String,
    },
    #[error("the store is damaged: {0}")]
    Damaged(#[source] ViewsError),
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
    /// The last staged batch that did not land: batches read through it
    /// must not land either.
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

/// Locks `mutex`, whose holders never leave it half-updated (each sets one
/// field), so a panic elsewhere does not poison it for good.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sled_at(dir: &Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .open()
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
        let (db, timers, discarded) = Views::trusted(dir, catalog_version, cache_bytes)?;
        let views = Views::over(db);
        *lock(&views.staging.timers) = Some(timers);
        let opened = match (discarded, views.position()?) {
            (Some(reason), _) => Opened::Discarded(reason),
            (None, 0) => Opened::Empty,
            (None, position) => Opened::Resumed(position),
        };
        views
            .db
            .insert(Meta::Schema.key(), &codec::encode_schema(SCHEMA_VERSION))?;
        views
            .db
            .insert(Meta::Catalog.key(), catalog_version.as_bytes())?;
        views.db.flush()?;
        Ok((views, opened))
    }

    /// The tree in `dir` with the timer's index read off it, if its views
    /// can be trusted; otherwise an empty tree and why the views were
    /// discarded.
    fn trusted(
        dir: &Path,
        catalog_version: &str,
        cache_bytes: u64,
    ) -> Result<(sled::Db, Timers, Option<Discarded>), ViewsError> {
        let db = match sled_at(dir, cache_bytes) {
            Ok(db) => db,
            // An I/O error (another process holds the store's lock, no
            // permission) says nothing about the views: refuse to start
            // rather than delete a store someone else is using.
            Err(e @ sled::Error::Io(_)) => return Err(ViewsError::Sled(e)),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "views unreadable, discarding them");
                let db = Self::wipe(None, dir, cache_bytes)?;
                return Ok((db, Timers::default(), Some(Discarded::Unopenable(e))));
            }
        };
        if db.is_empty() {
            return Ok((db, Timers::default(), None));
        }
        match Views::over(db.clone()).doubt(catalog_version) {
            Ok(timers) => Ok((db, timers, None)),
            Err(reason) => {
                // sled may open a damaged file and fail only on reading
                // it, clearing included: start from an empty directory.
                let db = Self::wipe(Some(db), dir, cache_bytes)?;
                Ok((db, Timers::default(), Some(reason)))
            }
        }
    }

    /// Marks the views in doubt (`reason` says why), durably: the next
    /// [`Views::open`] discards them, so they are rebuilt from the stream.
    pub fn mark_in_doubt(&self, reason: &str) -> Result<(), ViewsError> {
        self.db.insert(Meta::InDoubt.key(), reason.as_bytes())?;
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
            return Err(ViewsError::OverFailedBatch);
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
        for entry in self.db.scan_prefix(KeyKind::Handoff.prefix()) {
            let (key, value) = entry?;
            let view: HandoffView = codec::decode(&key, &value)?;
            if let Some(at) = earliest_deadline(&view.deadlines) {
                timers.insert_deadline(at, view.handoff.handoff_id.clone());
            }
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
        self.with_timers(Timers::clone)
            .expect("the timer index reads")
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
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ViewsError::Reset {
                    path: dir.display().to_string(),
                    source: Arc::new(e),
                })
            }
        }
        Ok(sled_at(dir, cache_bytes)?)
    }

    /// The timer's index if the stored views can be trusted; why not if
    /// they cannot.
    fn doubt(&self, catalog_version: &str) -> Result<Timers, Discarded> {
        let read = |meta: Meta| {
            self.db
                .get(meta.key())
                .map_err(|e| Discarded::Damaged(e.into()))
        };
        if let Some(reason) = read(Meta::InDoubt)? {
            return Err(Discarded::MarkedInDoubt(
                String::from_utf8_lossy(&reason).into_owned(),
            ));
        }
        let schema = read(Meta::Schema)?
            .map(|s| codec::decode_schema(Meta::Schema.key(), &s))
            .transpose()
            .map_err(Discarded::Damaged)?;
        if schema != Some(SCHEMA_VERSION) {
            return Err(Discarded::OtherSchema { found: schema });
        }
        let catalog = read(Meta::Catalog)?;
        if catalog.as_deref() != Some(catalog_version.as_bytes()) {
            return Err(Discarded::OtherCatalog {
                found: catalog.map(|c| String::from_utf8_lossy(&c).into_owned()),
                wanted: catalog_version.to_owned(),
            });
        }
        self.check_integrity().map_err(Discarded::Damaged)
    }

    /// Reads every stored key and value once, so that a damaged store is
    /// found at start, not in the middle of a query; the timer's index is
    /// read off the hand-off views on the way.
    fn check_integrity(&self) -> Result<Timers, ViewsError> {
        let mut timers = Timers::default();
        for entry in self.db.iter() {
            let (key, value) = entry?;
            match Key::parse(&key)?.kind() {
                KeyKind::Handoff => {
                    let view = codec::decode::<HandoffView>(&key, &value)?;
                    if let Some(at) = earliest_deadline(&view.deadlines) {
                        timers.insert_deadline(at, view.handoff.handoff_id.clone());
                    }
                    if let Some(at) = next_due(&view.deadlines, &view.warnings) {
                        timers.insert(at, view.handoff.handoff_id);
                    }
                }
                KeyKind::Breach | KeyKind::Outbox => {
                    codec::decode::<BreachRecord>(&key, &value)?;
                }
                KeyKind::Tally => {
                    codec::decode::<Tallies>(&key, &value)?;
                }
                KeyKind::Pair => {
                    codec::decode::<PairTallies>(&key, &value)?;
                }
                KeyKind::Disruption => {
                    codec::decode::<DisruptionView>(&key, &value)?;
                }
                KeyKind::Meta
                | KeyKind::Requested
                | KeyKind::OpenBreach
                | KeyKind::PairBreach
                | KeyKind::Closed
                | KeyKind::Retired => {}
            }
        }
        Ok(timers)
    }

    pub(crate) fn tree(&self) -> &sled::Db {
        &self.db
    }

    /// Last stream sequence whose event is in the views (0: none).
    pub fn position(&self) -> Result<u64, ViewsError> {
        let key = Meta::Position.key();
        match self.db.get(key)? {
            Some(bytes) => codec::decode_sequence(key, &bytes),
            None => Ok(0),
        }
    }

    /// Latest `recorded_at` among applied events: how far the log has told
    /// the views about the world.
    pub fn stream_time(&self) -> Result<Timestamp, ViewsError> {
        let key = Meta::StreamTime.key();
        match self.db.get(key)? {
            Some(bytes) => codec::decode_time(key, &bytes),
            None => Ok(Timestamp(i64::MIN)),
        }
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
            if !key.starts_with(&KeyKind::Meta.prefix()) {
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

/// Pending changes with read-your-writes, applied atomically once sealed
/// ([`Batch::seal`], then [`Views::stage`] and [`Views::land`]).
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

    /// `handoff`'s earliest running deadline, `before` as this batch found
    /// it, is now `after` (`None`: no clock of it runs).
    pub(crate) fn set_deadline(
        &mut self,
        handoff: &Token,
        before: Option<Timestamp>,
        after: Option<Timestamp>,
    ) {
        self.timers.set_deadline(handoff, before, after);
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
            Some(Some(bytes)) => return codec::decode(key, bytes).map(Some),
            Some(None) => return Ok(None),
            None => self.views.db.get(key)?,
        };
        bytes.map(|b| codec::decode(key, &b)).transpose()
    }

    /// The raw value under `key`, as [`Batch::get`] reads it.
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ViewsError> {
        Ok(match self.lookup(key) {
            Some(value) => value.cloned(),
            None => self.views.db.get(key)?.map(|v| v.to_vec()),
        })
    }

    pub(crate) fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) -> Result<(), ViewsError> {
        self.changes.insert(key, Some(codec::encode(value)?));
        Ok(())
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

    /// Keys under `prefix`, as [`Batch::keys_in`] lists them.
    pub(crate) fn keys_under(&self, prefix: Prefix<'_>) -> Result<Vec<Vec<u8>>, ViewsError> {
        let start = prefix.to_bytes();
        let mut end = start.clone();
        end.push(0xff);
        self.keys_in(&start, &end)
    }

    /// Every change, with the new position (if given) and stream time, as
    /// one batch for [`Views::stage`] and [`Views::land`].
    pub(crate) fn seal(mut self, position: Option<u64>, stream_time: Timestamp) -> Sealed {
        if let Some(position) = position {
            self.put_raw(
                Meta::Position.key().to_vec(),
                codec::encode_sequence(position).to_vec(),
            );
        }
        self.put_raw(
            Meta::StreamTime.key().to_vec(),
            codec::encode_time(stream_time).to_vec(),
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
        let key = Meta::StreamTime.key();
        match self.get_raw(key)? {
            Some(bytes) => codec::decode_time(key, &bytes),
            None => Ok(Timestamp(i64::MIN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            matches!(views.stage(&second), Err(ViewsError::OverFailedBatch)),
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
        let refused = views.land_with(first, |_| Err(sled::Error::ReportableBug("refused".into())));
        assert!(matches!(refused, Err(ViewsError::Sled(_))));
        assert!(matches!(
            views.stage(&second),
            Err(ViewsError::OverFailedBatch)
        ));
        // A batch begun afterwards reads the tree alone and may land.
        let third = Batch::new(&views).seal(Some(1), Timestamp(1));
        views.stage(&third).expect("stage");
        views.land(third).expect("land");
        assert_eq!(views.position().expect("position"), 1);
    }

    #[test]
    fn an_unknown_outbox_tag_is_an_error_not_a_breach() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (views, _) = Views::open(dir.path(), "v1").expect("open");
        let mut batch = Batch::new(&views);
        batch.put_raw(b"x/z/lab-stat/h-1/1".to_vec(), Vec::new());
        commit(batch, 1);
        let listed = views.outbox(10);
        assert!(
            matches!(
                listed,
                Err(ViewsError::Key(crate::keys::KeyError::UnknownOutboxTag {
                    tag: 'z',
                    ..
                }))
            ),
            "{listed:?}"
        );
    }

    #[test]
    fn a_store_with_an_unknown_outbox_tag_is_discarded_as_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (views, _) = Views::open(dir.path(), "v1").expect("open");
            let mut batch = Batch::new(&views);
            batch.put_raw(b"x/z/lab-stat/h-1/1".to_vec(), Vec::new());
            commit(batch, 1);
        }
        let (views, opened) = Views::open(dir.path(), "v1").expect("reopen");
        assert!(
            matches!(
                &opened,
                Opened::Discarded(Discarded::Damaged(ViewsError::Key(
                    crate::keys::KeyError::UnknownOutboxTag { tag: 'z', .. }
                )))
            ),
            "{opened:?}"
        );
        assert_eq!(views.position().expect("position"), 0);
    }
}
