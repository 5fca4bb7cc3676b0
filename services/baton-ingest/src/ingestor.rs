//! The append rules.
//!
//! For each event: validate it, check it against the catalog, load the
//! hand-off's state (from the cache, or rebuilt from the stream), answer a
//! resend from the hand-off's own event ids (idempotent for as long as the
//! stream keeps the hand-off, not just JetStream's 2-minute window), check
//! `expected_version`, apply the lifecycle, then append conditionally on the
//! hand-off's last stream sequence. If another replica appended first,
//! JetStream refuses, the state is reloaded and the event judged again.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
};

use baton_domain::{
    access::{Action, Caller, Role},
    disruption::{Change, Disruption, DisruptionEvent},
    event::Priority,
    event::{Event, Limits, ValidationError},
    lifecycle::Handoff,
    Catalog, Timestamp, Token,
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

/// An event already in the hand-off, for answering resends.
#[derive(Debug, Clone)]
struct Prior {
    accepted: Accepted,
    event_type: baton_domain::EventType,
    occurred_at: Timestamp,
}

/// A hand-off as this replica last saw it in the stream.
#[derive(Debug, Clone)]
struct Known {
    handoff: Handoff,
    last_sequence: u64,
    events: HashMap<String, Prior>,
}

impl Known {
    /// About what it holds in memory, in bytes: the cache's weight for it.
    fn weight(&self) -> usize {
        let attributes: usize = self
            .handoff
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum();
        let events: usize = self
            .events
            .keys()
            .map(|id| id.len() + std::mem::size_of::<(String, Prior)>() + 16)
            .sum();
        std::mem::size_of::<Known>() + attributes + events
    }
}

/// Validates and appends hand-off events.
#[derive(Debug)]
pub struct Ingestor {
    log: EventLog,
    catalog: Arc<Catalog>,
    limits: Limits,
    cache: Mutex<Recent<Token, Arc<Known>>>,
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
    /// and `recorded_at`).
    pub async fn append(
        &self,
        event: Event,
        expected_version: Option<u64>,
        now: Timestamp,
    ) -> Result<Accepted, IngestError> {
        self.append_as(event, expected_version, now, None).await
    }

    /// [`Ingestor::append`] for an authenticated `caller` (`None`: ingest
    /// runs without authentication): the caller must be allowed the event on
    /// this hand-off ([`baton_domain::access::allowed`]), and is recorded in
    /// `sent_by`. History (`event.backfill`) is an importer's to load; an
    /// importer's events are always history.
    pub async fn append_as(
        &self,
        mut event: Event,
        expected_version: Option<u64>,
        now: Timestamp,
        caller: Option<&Caller>,
    ) -> Result<Accepted, IngestError> {
        event.sent_by = caller.map(|c| c.id.clone()).unwrap_or_default();
        if let Some(caller) = caller {
            if caller.role == Role::Importer {
                event.backfill = true;
            } else if event.backfill {
                caller.may_backfill()?;
            }
        }
        event.validate(&self.limits, now)?;
        self.check_catalog(&event)?;
        self.check_privacy(&event)?;
        let stripe = self.hasher.hash_one(&event.handoff_id) as usize % STRIPES;
        let _serialised = self.stripes[stripe].lock().await;

        for attempt in 0..MAX_ATTEMPTS {
            // A REQUESTED for a hand-off this replica has not seen is almost
            // always a new hand-off: append it on condition that the
            // hand-off has no event yet, and read its history only if
            // JetStream says it has (a resend, or a second REQUESTED).
            let optimistic = attempt == 0
                && event.event_type == baton_domain::EventType::Requested
                && expected_version.is_none_or(|v| v == 0);
            let known = if optimistic {
                self.cached(&event.handoff_id)
            } else {
                self.known(&event.handoff_id).await?
            };
            if let Some(caller) = caller {
                // Judged against the hand-off as it stands (its current
                // supplier), or the request's own parties for a new one.
                let (parties, priority) = match &known {
                    Some(k) => (
                        Some((&k.handoff.supplier, &k.handoff.customer)),
                        k.handoff.priority,
                    ),
                    None => (
                        event.supplier.as_ref().zip(event.customer.as_ref()),
                        event.priority.unwrap_or(Priority::Routine),
                    ),
                };
                if let Some((supplier, customer)) = parties {
                    let action = Action::of(event.event_type, priority, event.priority);
                    caller.may(action, supplier, customer)?;
                }
            }
            if let Some(prior) = known.as_ref().and_then(|k| k.events.get(&event.event_id)) {
                if prior.event_type == event.event_type && prior.occurred_at == event.occurred_at {
                    return Ok(Accepted {
                        duplicate: true,
                        ..prior.accepted
                    });
                }
                return Err(IngestError::EventIdReused {
                    event_id: event.event_id.clone(),
                    version: prior.accepted.version,
                });
            }
            let version = known.as_ref().map(|k| k.handoff.version).unwrap_or(0);
            if let Some(expected) = expected_version {
                if expected != version {
                    return Err(IngestError::VersionMismatch {
                        expected,
                        actual: version,
                    });
                }
            }
            let mut record = event.clone();
            let next = match &known {
                None => Handoff::open(&record)?,
                Some(k) => {
                    let mut handoff = k.handoff.clone();
                    handoff.complete(&mut record)?;
                    handoff.apply(&record)?;
                    handoff
                }
            };
            record.version = next.version;
            record.recorded_at = Some(now);
            let last_sequence = known.as_ref().map(|k| k.last_sequence).unwrap_or(0);
            match self.log.append(&record, last_sequence).await {
                Ok(appended) if !appended.duplicate => {
                    let accepted = Accepted {
                        version: record.version,
                        sequence: appended.sequence,
                        duplicate: false,
                    };
                    self.remember(known, next, &record, accepted);
                    return Ok(accepted);
                }
                // JetStream had the message id (another replica, moments
                // ago), or another writer got in first: look again.
                Ok(_) => self.forget(&event.handoff_id),
                Err(LogError::Conflict) => {
                    self.conflicts.inc();
                    self.forget(&event.handoff_id);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IngestError::Contention(event.handoff_id.to_string()))
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
        mut event: DisruptionEvent,
        now: Timestamp,
        caller: Option<&Caller>,
    ) -> Result<Accepted, IngestError> {
        event.sent_by = caller.map(|c| c.id.clone()).unwrap_or_default();
        event.validate(&self.limits, now)?;
        if let Some(caller) = caller {
            caller.may_disrupt(&event.supplier)?;
        }
        baton_domain::privacy::check_disruption(&event, self.catalog.attributes.as_ref())?;
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
            match Disruption::apply(current.as_ref(), &event)? {
                Change::Duplicate => {
                    let sequence = history
                        .iter()
                        .find(|(_, past)| past.phase == event.phase)
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
            let mut record = event.clone();
            record.recorded_at = Some(now);
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

    /// No patient data in anything typed: actor, ids, attribute keys (from
    /// the catalog's list, if it has one) and values, the rating comment.
    fn check_privacy(&self, event: &Event) -> Result<(), ValidationError> {
        baton_domain::privacy::check_event(event, self.catalog.attributes.as_ref())
    }

    fn check_catalog(&self, event: &Event) -> Result<(), ValidationError> {
        if let Some(kind) = &event.kind {
            if !self.catalog.has_kind(kind) {
                return Err(ValidationError::new(
                    "kind",
                    format!("{kind} is not a kind in the catalog"),
                ));
            }
        }
        for (field, department) in [("supplier", &event.supplier), ("customer", &event.customer)] {
            if let Some(department) = department {
                if !self.catalog.has_department(department) {
                    return Err(ValidationError::new(
                        field,
                        format!("{department} is not a department in the catalog"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The hand-off's state: cached, or rebuilt from its events in the stream.
    fn cached(&self, handoff_id: &Token) -> Option<Arc<Known>> {
        self.lock_cache().get(handoff_id).cloned()
    }

    async fn known(&self, handoff_id: &Token) -> Result<Option<Arc<Known>>, IngestError> {
        if let Some(known) = self.cached(handoff_id) {
            return Ok(Some(known));
        }
        let history = self.log.history(handoff_id).await?;
        let Some(last) = history.last() else {
            return Ok(None);
        };
        let last_sequence = last.sequence;
        let handoff = Handoff::replay(history.iter().map(|r| &r.event)).map_err(|source| {
            IngestError::Unreplayable {
                handoff_id: handoff_id.clone(),
                source,
            }
        })?;
        let Some(handoff) = handoff else {
            return Ok(None);
        };
        let events = history
            .into_iter()
            .map(|r| {
                let prior = Prior {
                    accepted: Accepted {
                        version: r.event.version,
                        sequence: r.sequence,
                        duplicate: true,
                    },
                    event_type: r.event.event_type,
                    occurred_at: r.event.occurred_at,
                };
                (r.event.event_id, prior)
            })
            .collect();
        self.saw(last_sequence);
        let known = Arc::new(Known {
            handoff,
            last_sequence,
            events,
        });
        self.insert(handoff_id.clone(), known.clone());
        Ok(Some(known))
    }

    fn remember(
        &self,
        before: Option<Arc<Known>>,
        handoff: Handoff,
        record: &Event,
        accepted: Accepted,
    ) {
        // The cache's reference goes first, so ours is (all but always) the
        // only one and the event ids are extended in place: copying them
        // made each append cost the hand-off's length, and a hand-off's
        // appends quadratic in it (up to 1,000 events).
        let mut events = match before {
            Some(known) => {
                self.forget(&record.handoff_id);
                Arc::try_unwrap(known)
                    .map(|known| known.events)
                    .unwrap_or_else(|shared| shared.events.clone())
            }
            None => HashMap::new(),
        };
        events.insert(
            record.event_id.clone(),
            Prior {
                accepted: Accepted {
                    duplicate: true,
                    ..accepted
                },
                event_type: record.event_type,
                occurred_at: record.occurred_at,
            },
        );
        let known = Known {
            handoff,
            last_sequence: accepted.sequence,
            events,
        };
        self.saw(accepted.sequence);
        self.insert(record.handoff_id.clone(), Arc::new(known));
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

    fn insert(&self, handoff_id: Token, known: Arc<Known>) {
        // Any hand-off dropped from the cache can be rebuilt from the
        // stream, so eviction costs time, never truth.
        let weight = known.weight();
        self.lock_cache().insert(handoff_id, known, weight);
    }

    fn forget(&self, handoff_id: &Token) {
        self.lock_cache().remove(handoff_id);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Recent<Token, Arc<Known>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so recover it.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
