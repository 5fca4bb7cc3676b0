//! Appending hand-off events: the I/O around the append rules.
//!
//! The rules are [`baton_domain::append`]'s. For each event this checks
//! what needs no history, then, serialised with other appends to the same
//! hand-off in this replica: loads the hand-off's history (from the cache,
//! or rebuilt from the stream), asks [`decide`] what to do, and does it:
//! answers a resend from the history (idempotent for as long as the stream
//! keeps the hand-off, not just JetStream's 2-minute window), or appends
//! the record conditionally on the hand-off's last stream sequence. If
//! another replica appended first, JetStream refuses, the history is
//! reloaded and the event decided again.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use baton_domain::{
    access::Caller,
    append::{decide, Append, CheckedEvent, Decision, History, StoredEvent},
    disruption::{Change, Disruption, DisruptionEvent, RecordedDisruption},
    event::{Event, Limits, ValidationError},
    Catalog, EventType, Timestamp, Token,
};
use baton_log::{EventLog, LogError};
use prometheus_client::metrics::counter::Counter;

use crate::{error::IngestError, recent::Recent};

/// Attempts to append one event while other writers keep winning.
const MAX_ATTEMPTS: usize = 8;
/// Appends to hand-offs in one stripe are serialised within this replica.
const STRIPES: usize = 1024;

/// What a client hears back for an accepted (or resent) event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub version: u64,
    pub sequence: u64,
    pub duplicate: bool,
}

/// What became of one attempt to store a decided append.
#[derive(Debug)]
enum Attempt {
    Stored(Accepted),
    /// Another writer appended to the hand-off since its history was read
    /// (or JetStream already had the message): read it again and decide
    /// again.
    Overtaken,
}

/// About what a hand-off's history holds in memory, in bytes: its weight
/// in the cache.
fn weight(history: &History) -> usize {
    let attributes: usize = history
        .handoff()
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.len() + 48)
        .sum();
    let events: usize = history
        .event_ids()
        .map(|id| id.len() + std::mem::size_of::<(String, StoredEvent)>() + 16)
        .sum();
    std::mem::size_of::<History>() + attributes + events
}

/// Validates and appends hand-off events.
#[derive(Debug)]
pub struct Ingestor {
    log: EventLog,
    catalog: Arc<Catalog>,
    limits: Limits,
    cache: Mutex<Recent<Token, Arc<History>>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
    /// Appends JetStream refused because the hand-off (or disruption)
    /// changed since this replica read it; each was judged again.
    conflicts: Counter,
    /// The highest stream sequence this replica has seen an event at: a
    /// stream that ends below it lost events (or was replaced), and the
    /// cache no longer tells the truth.
    highest_seen: std::sync::atomic::AtomicU64,
}

impl Ingestor {
    /// Keeps at most `cache_capacity` hand-offs weighing about
    /// `cache_bytes` between appends.
    pub fn new(
        log: EventLog,
        catalog: Arc<Catalog>,
        limits: Limits,
        cache_capacity: usize,
        cache_bytes: usize,
    ) -> Ingestor {
        Ingestor {
            log,
            catalog,
            limits,
            cache: Mutex::new(Recent::new(cache_capacity, cache_bytes)),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
            conflicts: Counter::default(),
            highest_seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts in `conflicts` every append JetStream refused on its
    /// condition (another writer appended since this replica read).
    pub fn counting_conflicts(self, conflicts: Counter) -> Ingestor {
        Ingestor { conflicts, ..self }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Appends `event` as of `now` (the receiver's clock, for the future bound
    /// and `recorded_at`) for an authenticated `caller` (`None`: ingest
    /// runs without authentication), who is recorded in `sent_by` and must
    /// be allowed the event on this hand-off
    /// ([`baton_domain::access::allowed`]); `backfill` when the request
    /// asks to load it as history. What may be appended, and as what, is
    /// [`CheckedEvent::check`]'s and [`decide`]'s to say.
    pub async fn append_as(
        &self,
        event: Event,
        backfill: bool,
        expected_version: Option<u64>,
        now: Timestamp,
        caller: Option<&Caller>,
    ) -> Result<Accepted, IngestError> {
        let event = CheckedEvent::check(event, backfill, caller, &self.catalog, &self.limits, now)?;
        let handoff_id = &event.event().handoff_id;
        let stripe = self.hasher.hash_one(handoff_id) as usize % STRIPES;
        let _serialised = self.stripes[stripe].lock().await;

        for attempt in 0..MAX_ATTEMPTS {
            // A REQUESTED for a hand-off this replica has not seen is almost
            // always a new hand-off: append it on condition that the
            // hand-off has no event yet, and read its history only if
            // JetStream says it has (a resend, or a second REQUESTED).
            let optimistic = attempt == 0
                && event.event().event_type == EventType::Requested
                && expected_version.is_none_or(|v| v == 0);
            let history = if optimistic {
                self.cached(handoff_id)
            } else {
                self.known(handoff_id).await?
            };
            match decide(history.as_deref(), &event, caller, expected_version, now)? {
                Decision::AlreadyStored { version, sequence } => {
                    return Ok(Accepted {
                        version,
                        sequence,
                        duplicate: true,
                    })
                }
                Decision::Append(append) => match self.store(history, *append).await? {
                    Attempt::Stored(accepted) => return Ok(accepted),
                    Attempt::Overtaken => {}
                },
            }
        }
        Err(IngestError::Contention(handoff_id.to_string()))
    }

    /// Appends what was decided against `before`, on condition that the
    /// hand-off still ends where it did, and keeps the history it makes.
    async fn store(
        &self,
        before: Option<Arc<History>>,
        append: Append,
    ) -> Result<Attempt, IngestError> {
        let handoff_id = append.record.event.handoff_id.clone();
        match self.log.append(&append.record, append.after_sequence).await {
            Ok(appended) if !appended.duplicate => {
                let accepted = Accepted {
                    version: append.record.envelope.version,
                    sequence: appended.sequence,
                    duplicate: false,
                };
                self.remember(before, append, appended.sequence);
                Ok(Attempt::Stored(accepted))
            }
            // JetStream had the message id (another replica, moments
            // ago), or another writer got in first: look again.
            Ok(_) => {
                self.forget(&handoff_id);
                Ok(Attempt::Overtaken)
            }
            Err(LogError::Conflict) => {
                self.conflicts.inc();
                self.forget(&handoff_id);
                Ok(Attempt::Overtaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Appends a disruption event as of `now`: the disruption's history is
    /// read from the stream, the event judged against it, and appended on
    /// condition that nobody appended to the disruption meanwhile.
    pub async fn append_disruption(
        &self,
        event: DisruptionEvent,
        now: Timestamp,
    ) -> Result<Accepted, IngestError> {
        self.append_disruption_as(event, now, None).await
    }

    /// [`Ingestor::append_disruption`] for an authenticated `caller`, who
    /// must speak for the disrupted supplier.
    pub async fn append_disruption_as(
        &self,
        event: DisruptionEvent,
        now: Timestamp,
        caller: Option<&Caller>,
    ) -> Result<Accepted, IngestError> {
        event.validate(&self.limits, now)?;
        if let Some(caller) = caller {
            caller.may_disrupt(&event.supplier)?;
        }
        event.check_patient_data(self.catalog.attributes.as_ref())?;
        if !self.catalog.has_department(&event.supplier) {
            return Err(ValidationError::new(
                "supplier",
                format!("{} is not a department in the catalog", event.supplier),
            )
            .into());
        }
        if let Some(kind) = event.kind.as_ref().filter(|k| !self.catalog.has_kind(k)) {
            return Err(ValidationError::new(
                "kind",
                format!("{kind} is not a kind in the catalog"),
            )
            .into());
        }
        let record = RecordedDisruption {
            event,
            recorded_at: now,
            sent_by: caller.map(|c| c.id.clone()).unwrap_or_default(),
        };
        let event = &record.event;
        for _ in 0..MAX_ATTEMPTS {
            let history = self
                .log
                .disruption_history(&event.supplier, &event.disruption_id)
                .await?;
            let mut current: Option<Disruption> = None;
            for (_, past) in &history {
                if let Ok(Change::Applied(d)) = Disruption::apply(current.as_ref(), past) {
                    current = Some(d);
                }
            }
            let last_sequence = history.last().map(|(seq, _)| *seq).unwrap_or(0);
            match Disruption::apply(current.as_ref(), &record)? {
                Change::Duplicate => {
                    let sequence = history
                        .iter()
                        .find(|(_, past)| past.event.phase == event.phase)
                        .map(|(seq, _)| *seq)
                        .unwrap_or(last_sequence);
                    return Ok(Accepted {
                        version: history.len() as u64,
                        sequence,
                        duplicate: true,
                    });
                }
                Change::Applied(_) => {}
            }
            match self.log.append_disruption(&record, last_sequence).await {
                Ok(appended) => {
                    return Ok(Accepted {
                        version: history.len() as u64 + 1,
                        sequence: appended.sequence,
                        duplicate: appended.duplicate,
                    })
                }
                Err(LogError::Conflict) => {
                    self.conflicts.inc();
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IngestError::Contention(event.disruption_id.to_string()))
    }

    /// The hand-off's history, if this replica has it cached.
    fn cached(&self, handoff_id: &Token) -> Option<Arc<History>> {
        self.lock_cache().get(handoff_id).cloned()
    }

    /// The hand-off's history: cached, or rebuilt from its events in the
    /// stream. `None`: it has no events.
    async fn known(&self, handoff_id: &Token) -> Result<Option<Arc<History>>, IngestError> {
        if let Some(history) = self.cached(handoff_id) {
            return Ok(Some(history));
        }
        let records = self.log.history(handoff_id).await?;
        let history = History::replay(records.into_iter().map(|r| (r.sequence, r.record)))
            .map_err(|source| IngestError::Unreplayable {
                handoff_id: handoff_id.clone(),
                source,
            })?;
        let Some(history) = history else {
            return Ok(None);
        };
        self.saw(history.last_sequence());
        let history = Arc::new(history);
        self.insert(handoff_id.clone(), history.clone());
        Ok(Some(history))
    }

    /// Caches the history `append`, stored at `sequence`, makes of `before`.
    fn remember(&self, before: Option<Arc<History>>, append: Append, sequence: u64) {
        let handoff_id = append.record.event.handoff_id.clone();
        // The cache's reference goes first, so ours is (all but always) the
        // only one and the event ids are extended in place: copying them
        // made each append cost the hand-off's length, and a hand-off's
        // appends quadratic in it (up to 1,000 events).
        let before = before.map(|history| {
            self.forget(&handoff_id);
            Arc::try_unwrap(history).unwrap_or_else(|shared| History::clone(&shared))
        });
        let history = append.into_history(before, sequence);
        self.saw(sequence);
        self.insert(handoff_id, Arc::new(history));
    }

    fn saw(&self, sequence: u64) {
        self.highest_seen
            .fetch_max(sequence, std::sync::atomic::Ordering::AcqRel);
    }

    /// Reads where the events stream ends; if it ends below an event this
    /// replica has seen, the stream lost events (a power cut before they
    /// were synced, a replaced stream), so the cache, which vouches for
    /// them, is dropped: resends are then judged against the stream.
    /// Returns whether it was.
    pub async fn check_stream(&self) -> Result<bool, IngestError> {
        let last = self.log.last_sequence().await?;
        let seen = self.highest_seen.load(std::sync::atomic::Ordering::Acquire);
        if last >= seen {
            return Ok(false);
        }
        tracing::warn!(
            seen,
            last,
            "the events stream ends below an event this replica saw: it lost events; forgetting the cache"
        );
        self.lock_cache().clear();
        self.highest_seen
            .store(last, std::sync::atomic::Ordering::Release);
        Ok(true)
    }

    fn insert(&self, handoff_id: Token, history: Arc<History>) {
        // Any hand-off dropped from the cache can be rebuilt from the
        // stream, so eviction costs time, never truth.
        let weight = weight(&history);
        self.lock_cache().insert(handoff_id, history, weight);
    }

    fn forget(&self, handoff_id: &Token) {
        self.lock_cache().remove(handoff_id);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Recent<Token, Arc<History>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so recover it.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
